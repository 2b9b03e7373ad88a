"""The rule loader rejects each kind of broken rule file with its location."""

from __future__ import annotations

from pathlib import Path

import pytest

from doctor.checks import CheckRegistry, hit, miss
from doctor.rules import RuleLoadError, load_rule_files

BROKEN = Path(__file__).parent / "data" / "broken-rules"
BASE = BROKEN / "base.yaml"


def _registry() -> CheckRegistry:
    registry = CheckRegistry()
    registry.register("test.always", lambda facts, args: hit(), "Always hits.")
    registry.register("test.flag", lambda facts, args: miss(), "Looks for a flag.",
                      params=("flag",))
    return registry


def test_base_file_loads_into_graph():
    book = load_rule_files([BASE], _registry())

    assert set(book.symptoms) == {"http-503"}
    assert set(book.causes) == {"upstream-down"}
    assert list(book.graph.successors("http-503")) == ["upstream-down"]


@pytest.mark.parametrize(
    ("file_name", "line", "key_path", "fragment"),
    [
        ("invalid-yaml.yaml", 4, "", "invalid YAML"),
        ("duplicate-id.yaml", 2, "id", "duplicate id 'upstream-down'; first defined at"),
        ("dangling-symptom.yaml", 2, "symptoms", "unknown symptom 'http-504'"),
        ("dangling-explains.yaml", 2, "explains", "unknown cause 'upstream-gone'"),
        ("unknown-check.yaml", 7, "causes[0].confirm[0].check",
         "unknown check id 'test.flga'; did you mean 'test.flag'?"),
        ("unknown-argument.yaml", 10, "causes[0].confirm[0].args.colour",
         "takes no argument 'colour' (it takes: flag)"),
        ("cycle.yaml", None, "explains", "cycle in cause links"),
        ("unknown-key.yaml", 4, "causes[0].sumary", "unknown key; did you mean 'summary'?"),
        ("missing-confirm.yaml", 2, "causes[0].confirm", "at least one confirm check"),
        ("bad-weight.yaml", 7, "causes[0].confirm[0].weight", "weight must be a positive number"),
        ("unknown-top-level.yaml", 1, "symptom", "unknown top-level key"),
    ],
)
def test_broken_file_rejected_with_location(file_name, line, key_path, fragment):
    broken = BROKEN / file_name

    with pytest.raises(RuleLoadError) as raised:
        load_rule_files([BASE, broken], _registry())

    problems = [problem for problem in raised.value.problems if fragment in problem.message]
    assert problems, f"no problem mentions {fragment!r}: {raised.value}"
    problem = problems[0]
    assert problem.source.endswith(file_name)
    assert problem.key_path == key_path
    if line is not None:
        assert problem.line == line


def test_cycle_names_every_cause_in_it():
    with pytest.raises(RuleLoadError) as raised:
        load_rule_files([BASE, BROKEN / "cycle.yaml"], _registry())

    message = str(raised.value)
    assert "first" in message
    assert "second" in message


def test_every_problem_reported_at_once():
    files = [BASE, BROKEN / "unknown-key.yaml", BROKEN / "dangling-explains.yaml"]

    with pytest.raises(RuleLoadError) as raised:
        load_rule_files(files, _registry())

    sources = {Path(problem.source).name for problem in raised.value.problems}
    assert sources == {"unknown-key.yaml", "dangling-explains.yaml"}
