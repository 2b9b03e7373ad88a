"""Rule files: the troubleshooting matrix loaded, validated and built into a graph.

`rules/*.yaml` declare symptoms, causes, the checks that confirm or rule out
each cause, the links from a cause to its deeper causes, and the playbook of
each cause. `rules/signatures.yaml` contains the catalogue of known error
signatures. Loading validates the whole set at once (unknown keys, missing
keys, duplicate ids, dangling references, unknown check ids and arguments,
cycles) and raises `RuleLoadError` with every problem's file, rule id, key
path and line.

The graph is a networkx DiGraph whose edges run symptom → cause and
shallower cause → deeper cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import networkx as nx

from doctor.checks import CheckRegistry
from doctor.yamlsource import LoadedYaml, YamlSyntaxError, load_yaml

SYMPTOM_KEYS = {"id", "title", "description", "detect"}
CAUSE_KEYS = {
    "id", "title", "summary", "symptoms", "explains", "confirm", "rule_out",
    "remediation", "playbook",
}
CHECK_REF_KEYS = {"check", "args", "weight"}


@dataclass(frozen=True)
class RuleProblem:
    """One validation error, with the most precise location the loader recorded."""

    source: str
    line: int | None
    key_path: str
    message: str
    rule_id: str | None = None

    def __str__(self) -> str:
        rule = f" [{self.rule_id}]" if self.rule_id else ""
        return f"{self.source}:{self.line or '?'}{rule} {self.key_path}: {self.message}"


class RuleLoadError(Exception):
    """Raised when rule or playbook files are invalid; carries every problem found."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        listing = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{len(problems)} problem(s) in rule files:\n{listing}")


@dataclass(frozen=True)
class CheckRef:
    check_id: str
    args: dict[str, Any]
    weight: float
    source: str
    line: int | None


@dataclass(frozen=True)
class SymptomRule:
    id: str
    title: str
    description: str
    detect: CheckRef
    source: str
    line: int | None


@dataclass(frozen=True)
class CauseRule:
    id: str
    title: str
    summary: str
    symptoms: tuple[str, ...]
    explains: tuple[str, ...]
    confirm: tuple[CheckRef, ...]
    rule_out: tuple[CheckRef, ...]
    remediation: str
    playbook: str | None
    source: str
    line: int | None


@dataclass
class Rulebook:
    symptoms: dict[str, SymptomRule] = field(default_factory=dict)
    causes: dict[str, CauseRule] = field(default_factory=dict)
    signatures: list[Any] = field(default_factory=list)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)


def load_rulebook(directory: Path, registry: CheckRegistry) -> Rulebook:
    """Load every `*.yaml` in `directory`, validate the whole set and build the graph."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise RuleLoadError([RuleProblem(str(directory), None, "", "no rule files (*.yaml) found")])
    return load_rule_files(files, registry)


def load_rule_files(files: Iterable[Path], registry: CheckRegistry) -> Rulebook:
    problems: list[RuleProblem] = []
    book = Rulebook()

    for path in files:
        _load_one_file(path, registry, book, problems)

    _check_references(book, problems)
    if not problems:
        _build_graph(book, problems)
    if problems:
        raise RuleLoadError(problems)
    return book


def _load_one_file(path: Path, registry: CheckRegistry, book: Rulebook,
                   problems: list[RuleProblem]) -> None:
    source = str(path)
    try:
        loaded = load_yaml(path.read_text(encoding="utf-8"), source)
    except OSError as error:
        problems.append(RuleProblem(source, None, "", f"cannot read the file: {error.strerror}"))
        return
    except UnicodeDecodeError:
        problems.append(RuleProblem(source, None, "", "the file is not UTF-8 text"))
        return
    except YamlSyntaxError as error:
        problems.append(RuleProblem(source, error.line, "", error.message))
        return

    data = loaded.data
    if not isinstance(data, dict):
        problems.append(RuleProblem(source, 1, "", "expected a mapping with 'symptoms', "
                                    "'causes' or 'signatures' at the top level"))
        return

    for key in data:
        if key not in ("symptoms", "causes", "signatures"):
            problems.append(RuleProblem(source, loaded.line_of(key), str(key),
                                        "unknown top-level key; expected symptoms, causes "
                                        "or signatures"))

    for index, entry in enumerate(_as_list(data, "symptoms", loaded, source, problems)):
        symptom = _read_symptom(entry, ("symptoms", index), loaded, source, registry, problems)
        if symptom is not None:
            _add_unique(book.symptoms, symptom, book, problems)

    for index, entry in enumerate(_as_list(data, "causes", loaded, source, problems)):
        cause = _read_cause(entry, ("causes", index), loaded, source, registry, problems)
        if cause is not None:
            _add_unique(book.causes, cause, book, problems)

    if "signatures" in data:
        _load_signatures(path, book, problems)


def _load_signatures(path: Path, book: Rulebook, problems: list[RuleProblem]) -> None:
    from doctor.parsers.signatures import load_catalogue

    entries, catalogue_problems = load_catalogue(path)
    book.signatures.extend(entries)
    for problem in catalogue_problems:
        problems.append(RuleProblem(problem.source, problem.line, "signatures", problem.message))


def _as_list(data: dict, key: str, loaded: LoadedYaml, source: str,
             problems: list[RuleProblem]) -> list:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(RuleProblem(source, loaded.line_of(key), key, "expected a list"))
        return []
    return value


def _add_unique(target: dict, rule: SymptomRule | CauseRule, book: Rulebook,
                problems: list[RuleProblem]) -> None:
    existing = book.symptoms.get(rule.id) or book.causes.get(rule.id)
    if existing is not None:
        problems.append(RuleProblem(
            rule.source, rule.line, "id",
            f"duplicate id {rule.id!r}; first defined at {existing.source}:{existing.line}",
            rule.id))
        return
    target[rule.id] = rule


def _read_symptom(entry: Any, path: tuple, loaded: LoadedYaml, source: str,
                  registry: CheckRegistry, problems: list[RuleProblem]) -> SymptomRule | None:
    if not _require_mapping(entry, path, loaded, source, problems):
        return None
    rule_id = _require_id(entry, path, loaded, source, problems)
    _reject_unknown_keys(entry, SYMPTOM_KEYS, path, loaded, source, problems, rule_id)

    title = _require_text(entry, "title", path, loaded, source, problems, rule_id)
    detect_entry = entry.get("detect")
    if detect_entry is None:
        problems.append(RuleProblem(source, loaded.line_of(*path), _dotted(path + ("detect",)),
                                    "missing required key", rule_id))
        return None
    detect = _read_check_ref(detect_entry, path + ("detect",), loaded, source, registry,
                             problems, rule_id)
    if rule_id is None or title is None or detect is None:
        return None
    return SymptomRule(rule_id, title, str(entry.get("description", "")), detect, source,
                       loaded.line_of(*path))


def _read_cause(entry: Any, path: tuple, loaded: LoadedYaml, source: str,
                registry: CheckRegistry, problems: list[RuleProblem]) -> CauseRule | None:
    if not _require_mapping(entry, path, loaded, source, problems):
        return None
    rule_id = _require_id(entry, path, loaded, source, problems)
    _reject_unknown_keys(entry, CAUSE_KEYS, path, loaded, source, problems, rule_id)

    title = _require_text(entry, "title", path, loaded, source, problems, rule_id)
    summary = _require_text(entry, "summary", path, loaded, source, problems, rule_id)
    remediation = _require_text(entry, "remediation", path, loaded, source, problems, rule_id)
    symptoms = _id_list(entry, "symptoms", path, loaded, source, problems, rule_id)
    explains = _id_list(entry, "explains", path, loaded, source, problems, rule_id)
    if not symptoms and not explains:
        problems.append(RuleProblem(source, loaded.line_of(*path), _dotted(path),
                                    "a cause needs 'symptoms' or 'explains' so the graph "
                                    "reaches it", rule_id))

    confirm = _check_ref_list(entry, "confirm", path, loaded, source, registry, problems, rule_id)
    rule_out = _check_ref_list(entry, "rule_out", path, loaded, source, registry, problems,
                               rule_id)
    if not confirm:
        problems.append(RuleProblem(source, loaded.line_of(*path), _dotted(path + ("confirm",)),
                                    "a cause needs at least one confirm check", rule_id))

    playbook = entry.get("playbook")
    if playbook is not None and not isinstance(playbook, str):
        problems.append(RuleProblem(source, loaded.line_of(*path, "playbook"),
                                    _dotted(path + ("playbook",)), "expected a playbook id",
                                    rule_id))
        playbook = None

    if rule_id is None or title is None or summary is None or remediation is None:
        return None
    return CauseRule(rule_id, title, summary, tuple(symptoms), tuple(explains), tuple(confirm),
                     tuple(rule_out), remediation, playbook, source, loaded.line_of(*path))


def _check_ref_list(entry: dict, key: str, path: tuple, loaded: LoadedYaml, source: str,
                    registry: CheckRegistry, problems: list[RuleProblem],
                    rule_id: str | None) -> list[CheckRef]:
    value = entry.get(key, [])
    if not isinstance(value, list):
        problems.append(RuleProblem(source, loaded.line_of(*path, key), _dotted(path + (key,)),
                                    "expected a list of checks", rule_id))
        return []
    refs = []
    for index, item in enumerate(value):
        ref = _read_check_ref(item, path + (key, index), loaded, source, registry, problems,
                              rule_id)
        if ref is not None:
            refs.append(ref)
    return refs


def _read_check_ref(item: Any, path: tuple, loaded: LoadedYaml, source: str,
                    registry: CheckRegistry, problems: list[RuleProblem],
                    rule_id: str | None) -> CheckRef | None:
    line = loaded.line_of(*path)
    if not isinstance(item, dict):
        problems.append(RuleProblem(source, line, _dotted(path),
                                    "expected a mapping like {check: ID, args: {...}}", rule_id))
        return None
    _reject_unknown_keys(item, CHECK_REF_KEYS, path, loaded, source, problems, rule_id)

    check_id = item.get("check")
    if not isinstance(check_id, str) or not check_id:
        problems.append(RuleProblem(source, line, _dotted(path + ("check",)),
                                    "missing check id", rule_id))
        return None
    spec = registry.get(check_id)
    if spec is None:
        suggestion = _closest(check_id, registry.ids())
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        problems.append(RuleProblem(source, loaded.line_of(*path, "check"),
                                    _dotted(path + ("check",)),
                                    f"unknown check id {check_id!r}{hint}", rule_id))
        return None

    args = item.get("args", {}) or {}
    if not isinstance(args, dict):
        problems.append(RuleProblem(source, loaded.line_of(*path, "args"),
                                    _dotted(path + ("args",)), "expected a mapping", rule_id))
        return None
    for name in args:
        if name not in spec.params:
            allowed = ", ".join(spec.params) or "none"
            problems.append(RuleProblem(source, loaded.line_of(*path, "args", name),
                                        _dotted(path + ("args", name)),
                                        f"check {check_id!r} takes no argument {name!r} "
                                        f"(it takes: {allowed})", rule_id))

    weight = item.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
        problems.append(RuleProblem(source, loaded.line_of(*path, "weight"),
                                    _dotted(path + ("weight",)),
                                    f"weight must be a positive number, not {weight!r}", rule_id))
        weight = 1
    return CheckRef(check_id, dict(args), float(weight), source, line)


def _require_mapping(entry: Any, path: tuple, loaded: LoadedYaml, source: str,
                     problems: list[RuleProblem]) -> bool:
    if isinstance(entry, dict):
        return True
    problems.append(RuleProblem(source, loaded.line_of(*path), _dotted(path),
                                "expected a mapping"))
    return False


def _require_id(entry: dict, path: tuple, loaded: LoadedYaml, source: str,
                problems: list[RuleProblem]) -> str | None:
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not rule_id.strip():
        problems.append(RuleProblem(source, loaded.line_of(*path), _dotted(path + ("id",)),
                                    "missing or empty id"))
        return None
    return rule_id


def _require_text(entry: dict, key: str, path: tuple, loaded: LoadedYaml, source: str,
                  problems: list[RuleProblem], rule_id: str | None) -> str | None:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        line = loaded.line_of(*path, key) if key in entry else loaded.line_of(*path)
        problems.append(RuleProblem(source, line, _dotted(path + (key,)),
                                    "missing required text", rule_id))
        return None
    return value.strip()


def _id_list(entry: dict, key: str, path: tuple, loaded: LoadedYaml, source: str,
             problems: list[RuleProblem], rule_id: str | None) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(RuleProblem(source, loaded.line_of(*path, key), _dotted(path + (key,)),
                                    "expected a list of ids", rule_id))
        return []
    return list(value)


def _reject_unknown_keys(entry: dict, allowed: set[str], path: tuple, loaded: LoadedYaml,
                         source: str, problems: list[RuleProblem], rule_id: str | None) -> None:
    for key in entry:
        if key not in allowed:
            suggestion = _closest(str(key), sorted(allowed))
            hint = f"; did you mean {suggestion!r}?" if suggestion else ""
            problems.append(RuleProblem(source, loaded.line_of(*path, key),
                                        _dotted(path + (key,)), f"unknown key{hint}", rule_id))


def _check_references(book: Rulebook, problems: list[RuleProblem]) -> None:
    for cause in book.causes.values():
        for symptom_id in cause.symptoms:
            if symptom_id not in book.symptoms:
                problems.append(RuleProblem(cause.source, cause.line, "symptoms",
                                            f"unknown symptom {symptom_id!r}", cause.id))
        for parent_id in cause.explains:
            if parent_id not in book.causes:
                problems.append(RuleProblem(cause.source, cause.line, "explains",
                                            f"unknown cause {parent_id!r}", cause.id))

    for signature in book.signatures:
        if signature.symptom and signature.symptom not in book.symptoms:
            problems.append(RuleProblem(signature.source, signature.line, "symptom",
                                        f"unknown symptom {signature.symptom!r}", signature.id))
        for cause_id in signature.causes:
            if cause_id not in book.causes:
                problems.append(RuleProblem(signature.source, signature.line, "causes",
                                            f"unknown cause {cause_id!r}", signature.id))


def _build_graph(book: Rulebook, problems: list[RuleProblem]) -> None:
    graph = nx.DiGraph()
    for symptom in book.symptoms.values():
        graph.add_node(symptom.id, kind="symptom")
    for cause in book.causes.values():
        graph.add_node(cause.id, kind="cause")
    for cause in book.causes.values():
        for symptom_id in cause.symptoms:
            graph.add_edge(symptom_id, cause.id)
        for parent_id in cause.explains:
            graph.add_edge(parent_id, cause.id)

    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        book.graph = graph
        return
    path = " → ".join(edge[0] for edge in cycle) + f" → {cycle[0][0]}"
    first = book.causes.get(cycle[0][1])
    problems.append(RuleProblem(first.source if first else "rules", first.line if first else None,
                                "explains", f"cycle in cause links: {path}",
                                first.id if first else None))


def _dotted(path: tuple) -> str:
    parts = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


def _closest(word: str, candidates: list[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None
