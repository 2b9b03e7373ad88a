"""Playbooks: the guided steps for a root cause, loaded and validated from YAML.

A playbook is a list of steps of four kinds. A `check` is a command to run
or show and what to look for. An `ask` is a question whose answers branch.
A `remediate` step is the change, its dry run, its rollback and the step that
verifies it. A `note` gives context and links. Commands are argv lists whose
`{placeholders}` are filled from the finding; they never pass through a shell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from doctor.resources import playbooks_dir
from doctor.rules import RuleLoadError, RuleProblem, Rulebook
from doctor.yamlsource import LoadedYaml, YamlSyntaxError, load_yaml

STEP_KINDS = ("check", "ask", "remediate", "note")
PLAYBOOK_KEYS = {"id", "title", "causes", "steps"}
STEP_KEYS = {
    "check": {"id", "kind", "title", "command", "look_for", "next"},
    "ask": {"id", "kind", "title", "question", "answers"},
    "remediate": {"id", "kind", "title", "command", "dry_run", "rollback", "verify", "next",
                  "manifest"},
    "note": {"id", "kind", "title", "text", "links", "next"},
}
REQUIRED_STEP_KEYS = {
    "check": ("id", "title", "look_for"),
    "ask": ("id", "question", "answers"),
    "remediate": ("id", "title", "command", "dry_run", "rollback", "verify"),
    "note": ("id", "text"),
}


@dataclass(frozen=True)
class Answer:
    label: str
    next: str | None


@dataclass(frozen=True)
class Step:
    id: str
    kind: str
    title: str
    command: tuple[str, ...] = ()
    look_for: str = ""
    question: str = ""
    answers: tuple[Answer, ...] = ()
    dry_run: tuple[str, ...] = ()
    rollback: tuple[str, ...] = ()
    verify: str | None = None
    text: str = ""
    links: tuple[str, ...] = ()
    next: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Playbook:
    id: str
    title: str
    causes: tuple[str, ...]
    steps: tuple[Step, ...]
    source: str
    line: int | None

    def step(self, step_id: str) -> Step | None:
        for step in self.steps:
            if step.id == step_id:
                return step
        return None


def load_playbooks(directory: Path | None = None) -> dict[str, Playbook]:
    """Load every playbook in `directory`; raises `RuleLoadError` listing every problem."""
    folder = directory or playbooks_dir()
    return load_playbook_files(sorted(folder.glob("*.yaml")))


def load_playbook_files(files: Iterable[Path]) -> dict[str, Playbook]:
    problems: list[RuleProblem] = []
    playbooks: dict[str, Playbook] = {}
    for path in files:
        playbook = _load_one(path, problems)
        if playbook is None:
            continue
        if playbook.id in playbooks:
            first = playbooks[playbook.id]
            problems.append(RuleProblem(playbook.source, playbook.line, "id",
                                        f"duplicate playbook id {playbook.id!r}; first defined "
                                        f"at {first.source}:{first.line}", playbook.id))
            continue
        playbooks[playbook.id] = playbook
    if problems:
        raise RuleLoadError(problems)
    return playbooks


def check_playbook_links(book: Rulebook, playbooks: dict[str, Playbook]) -> list[RuleProblem]:
    """List causes whose playbook is missing and playbooks that name unknown causes."""
    problems = []
    for cause in book.causes.values():
        if cause.playbook is None:
            problems.append(RuleProblem(cause.source, cause.line, "playbook",
                                        "the cause has no playbook", cause.id))
        elif cause.playbook not in playbooks:
            problems.append(RuleProblem(cause.source, cause.line, "playbook",
                                        f"unknown playbook {cause.playbook!r}", cause.id))
    for playbook in playbooks.values():
        for cause_id in playbook.causes:
            if cause_id not in book.causes:
                problems.append(RuleProblem(playbook.source, playbook.line, "causes",
                                            f"unknown cause {cause_id!r}", playbook.id))
    return problems


def _load_one(path: Path, problems: list[RuleProblem]) -> Playbook | None:
    source = str(path)
    try:
        loaded = load_yaml(path.read_text(encoding="utf-8"), source)
    except OSError as error:
        problems.append(RuleProblem(source, None, "", f"cannot read the file: {error.strerror}"))
        return None
    except YamlSyntaxError as error:
        problems.append(RuleProblem(source, error.line, "", error.message))
        return None

    data = loaded.data
    if not isinstance(data, dict):
        problems.append(RuleProblem(source, 1, "", "expected a mapping with id, title, causes "
                                    "and steps"))
        return None

    playbook_id = data.get("id")
    count_before = len(problems)
    for key in data:
        if key not in PLAYBOOK_KEYS:
            problems.append(RuleProblem(source, loaded.line_of(key), str(key), "unknown key",
                                        playbook_id))
    for key in ("id", "title"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            problems.append(RuleProblem(source, loaded.line_of(key), key,
                                        "missing required text", playbook_id))
    causes = data.get("causes")
    if not isinstance(causes, list) or not causes or not all(isinstance(c, str) for c in causes):
        problems.append(RuleProblem(source, loaded.line_of("causes"), "causes",
                                    "expected a non-empty list of cause ids", playbook_id))
        causes = []

    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(RuleProblem(source, loaded.line_of("steps"), "steps",
                                    "expected a non-empty list of steps", playbook_id))
        raw_steps = []
    steps = [_read_step(entry, index, loaded, source, problems, playbook_id)
             for index, entry in enumerate(raw_steps)]
    valid_steps = [step for step in steps if step is not None]
    _check_step_links(valid_steps, loaded, source, problems, playbook_id)

    if len(problems) > count_before:
        return None
    return Playbook(str(playbook_id), str(data["title"]), tuple(causes), tuple(valid_steps),
                    source, loaded.line_of("id"))


def _read_step(entry: Any, index: int, loaded: LoadedYaml, source: str,
               problems: list[RuleProblem], playbook_id: Any) -> Step | None:
    path = ("steps", index)
    key_path = f"steps[{index}]"
    if not isinstance(entry, dict):
        problems.append(RuleProblem(source, loaded.line_of(*path), key_path, "expected a mapping",
                                    playbook_id))
        return None
    kind = entry.get("kind")
    if kind not in STEP_KINDS:
        problems.append(RuleProblem(source, loaded.line_of(*path, "kind"), f"{key_path}.kind",
                                    f"unknown step kind {kind!r}; expected one of "
                                    f"{', '.join(STEP_KINDS)}", playbook_id))
        return None

    before = len(problems)
    for key in entry:
        if key not in STEP_KEYS[kind]:
            problems.append(RuleProblem(source, loaded.line_of(*path, key), f"{key_path}.{key}",
                                        f"unknown key for a {kind} step", playbook_id))
    for key in REQUIRED_STEP_KEYS[kind]:
        if key not in entry or entry[key] in (None, "", []):
            problems.append(RuleProblem(source, loaded.line_of(*path), f"{key_path}.{key}",
                                        f"a {kind} step needs {key!r}", playbook_id))
    commands = {}
    for key in ("command", "dry_run", "rollback"):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(part, (str, int)) for part in value):
            problems.append(RuleProblem(source, loaded.line_of(*path, key), f"{key_path}.{key}",
                                        "expected an argv list of strings, not a shell string",
                                        playbook_id))
            value = []
        commands[key] = tuple(str(part) for part in value)

    answers = []
    for answer_index, answer in enumerate(entry.get("answers", []) or []):
        if not isinstance(answer, dict) or not isinstance(answer.get("label"), str):
            problems.append(RuleProblem(source, loaded.line_of(*path, "answers", answer_index),
                                        f"{key_path}.answers[{answer_index}]",
                                        "expected {label: TEXT, next: STEP_ID}", playbook_id))
            continue
        answers.append(Answer(answer["label"], answer.get("next")))

    if len(problems) > before:
        return None
    return Step(
        id=str(entry["id"]),
        kind=kind,
        title=str(entry.get("title") or entry.get("question") or entry["id"]),
        command=commands["command"],
        look_for=str(entry.get("look_for", "")),
        question=str(entry.get("question", "")),
        answers=tuple(answers),
        dry_run=commands["dry_run"],
        rollback=commands["rollback"],
        verify=entry.get("verify"),
        text=str(entry.get("text", "")),
        links=tuple(str(link) for link in entry.get("links", []) or []),
        next=entry.get("next"),
        line=loaded.line_of(*path),
    )


def _check_step_links(steps: list[Step], loaded: LoadedYaml, source: str,
                      problems: list[RuleProblem], playbook_id: Any) -> None:
    ids = [step.id for step in steps]
    for index, step in enumerate(steps):
        if ids.count(step.id) > 1 and ids.index(step.id) != index:
            problems.append(RuleProblem(source, step.line, f"steps[{index}].id",
                                        f"duplicate step id {step.id!r}", playbook_id))
        targets = [answer.next for answer in step.answers] + [step.next]
        if step.kind == "remediate":
            targets.append(step.verify)
        for target in targets:
            if target is not None and target not in ids:
                problems.append(RuleProblem(source, step.line, f"steps[{index}]",
                                            f"step {step.id!r} points to unknown step "
                                            f"{target!r}", playbook_id))
