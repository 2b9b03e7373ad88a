"""One-shot diagnosis of evidence on disk: read the inputs, load the rules, run the engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence

from doctor.checks import CheckRegistry
from doctor.checks.defaults import default_registry
from doctor.diagnosis import Diagnosis
from doctor.engine import diagnose
from doctor.facts import FactSet
from doctor.readers import read_paths
from doctor.resources import rules_dir
from doctor.rules import Rulebook, load_rulebook


@dataclass(frozen=True)
class Engine:
    """A loaded rulebook with the registry its checks refer to."""

    rulebook: Rulebook
    registry: CheckRegistry


def load_engine(rules_path: Path | None = None) -> Engine:
    """Load and validate the rules; raises `RuleLoadError` listing every problem."""
    registry = default_registry()
    rulebook = load_rulebook(rules_path or rules_dir(), registry)
    return Engine(rulebook, registry)


def scan_paths(paths: Sequence[Path], *, engine: Engine | None = None,
               now: datetime | None = None) -> Diagnosis:
    """Diagnose the evidence in `paths` (files, folders, archives or bundles)."""
    diagnosis, _ = scan_paths_with_facts(paths, engine=engine, now=now)
    return diagnosis


def scan_paths_with_facts(paths: Sequence[Path], *, engine: Engine | None = None,
                          now: datetime | None = None) -> tuple[Diagnosis, FactSet]:
    """Diagnose `paths` as `scan_paths` does and also return the facts read, for views that chart them."""
    engine = engine or load_engine()
    read = read_paths([Path(path) for path in paths], engine.rulebook.signatures)
    diagnosis = diagnose(read.facts, engine.rulebook, engine.registry, read.observations, now=now)
    diagnosis.inputs = list(read.inputs)
    return diagnosis, read.facts
