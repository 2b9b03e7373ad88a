"""The guided session engine: placeholders, branching, back, safety gates, journal and resume.

Commands run through the real `Runner`: python3 and curl against an HTTP
server on 127.0.0.1 that counts the requests that would change state, and
kubectl against a kubeconfig whose server refuses connections.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from doctor.journal import Journal, read_journal
from doctor.playbooks import load_playbook_files, load_playbooks
from doctor.readers import read_paths
from doctor.runner import Runner
from doctor.scan import load_engine
from doctor.engine import diagnose
from doctor.session import (
    ANSWERED, APPLIED, COULD_NOT_RUN, FAILED, PASSED, REFUSED, SHOWN, Confirmation, KubeContext,
    MutationRefused, Session, SessionError, current_kube_context, fill, is_production,
    load_production_contexts, placeholders_in, resource_name, session_summary, values_from_facts,
)

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLES = REPOSITORY / "examples"
PROD = KubeContext("prod-eu", "eu-cluster", "default")


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches on
        self._answer(b"state: " + str(len(self.server.posts)).encode() + b"\n")

    def do_POST(self) -> None:  # noqa: N802
        self.server.posts.append(self.path)
        self._answer(b"changed\n")

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def target():
    """An HTTP server on 127.0.0.1 that records every POST; stopped after the test."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    server.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _write_playbook(folder: Path, port: int) -> Path:
    text = f"""
id: counter
title: Change the counter
causes: [upstream-app-down]
steps:
  - id: read
    kind: check
    title: Read the counter
    command: [curl, --silent, --fail, --noproxy, "*", "http://127.0.0.1:{port}/{{name}}"]
    look_for: the state line
  - id: sneaky
    kind: check
    title: A check whose command would change state
    command: [curl, --silent, --noproxy, "*", -X, POST, "http://127.0.0.1:{port}/from-check"]
    look_for: nothing
  - id: choose
    kind: ask
    question: Change it?
    answers:
      - {{label: "Yes", next: change}}
      - {{label: "No", next: why}}
  - id: change
    kind: remediate
    title: Change the counter
    command: [curl, --silent, --fail, --noproxy, "*", -X, POST, "http://127.0.0.1:{port}/{{name}}"]
    dry_run: [curl, --silent, --fail, --noproxy, "*", "http://127.0.0.1:{port}/{{name}}?dry-run"]
    rollback: [curl, --silent, --fail, --noproxy, "*", -X, POST, "http://127.0.0.1:{port}/undo"]
    verify: read
  - id: why
    kind: note
    text: Context.
"""
    path = folder / "counter.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def counter_playbook(tmp_path, target):
    return load_playbook_files([_write_playbook(tmp_path, target.server_address[1])])["counter"]


def _session(tmp_path, playbook, **kwargs) -> Session:
    kwargs.setdefault("context", KubeContext("kind-lab", "kind", "default"))
    return Session.start(playbook, Journal.for_session("s1", tmp_path / "sessions"),
                         values={"name": "counter"}, **kwargs)


def _entries(session: Session):
    return read_journal(session.journal.path).entries


# --- placeholders ---


def test_fill_keeps_jsonpath_braces():
    argv = ["kubectl", "get", "pod", "{pod}", "-o",
            "jsonpath={range .status.containerStatuses[*]}{.name}{'\\n'}{end}"]

    filled = fill(argv, {"pod": "web-1", "end": "x", "name": "n"})

    assert filled[3] == "web-1"
    assert filled[5] == argv[5]


def test_fill_leaves_unknown_names():
    assert fill(["{pod}", "{unknown}", "{.x}"], {"unknown": "u"}) == ("{pod}", "{unknown}", "{.x}")


def test_shipped_placeholders_are_known_or_jsonpath():
    names = set()
    for playbook in load_playbooks().values():
        for step in playbook.steps:
            names.update(placeholders_in([*step.command, *step.dry_run, *step.rollback]))

    assert "pod" in names and "namespace" in names
    assert "end" not in names


def test_values_from_upstream_example():
    engine = load_engine()
    read = read_paths([EXAMPLES / "503-upstream-down"], engine.rulebook.signatures)
    diagnosis = diagnose(read.facts, engine.rulebook, engine.registry, read.observations)

    values = values_from_facts(diagnosis.top, read.facts)

    assert values["pod"] == "httpbin-5c7d9f8b6-q4w2n"
    assert values["namespace"] == "default"
    assert values["deployment"] == "httpbin"
    assert values["service"] == "httpbin"
    assert values["caller_pod"] == "sleep-7b9f8c6d5-k2x8p"
    assert values["caller_principal"] == "cluster.local/ns/default/sa/sleep"


def test_resource_name_of_kubectl_patch():
    argv = ["kubectl", "patch", "authorizationpolicy", "allow-sleep", "-n", "default", "--type", "json",
            "-p", "[]"]

    assert resource_name(argv) == "authorizationpolicy/allow-sleep"
    assert resource_name(["kubectl", "rollout", "undo", "deployment/web", "-n", "x"]) == "deployment/web"


# --- walking a playbook ---


def test_check_records_passed_output(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)

    record = session.run_check(Runner())

    assert record.result == PASSED
    assert record.commands[0].output == "state: 0\n"
    assert [entry.kind for entry in _entries(session)][-2:] == ["command", "step_result"]


def test_check_without_tool_could_not_run(tmp_path):
    playbook = load_playbooks()["upstream-app-down"]
    session = Session.start(playbook, Journal.for_session("s2", tmp_path),
                            values={"namespace": "default", "service": "httpbin"})

    record = session.run_check(Runner(search_path=[str(tmp_path)]))

    assert record.result == COULD_NOT_RUN
    assert "kubectl not found" in record.reason


def test_kubectl_refused_could_not_run(tmp_path):
    kubeconfig = _kubeconfig(tmp_path, "kind-lab")
    playbook = load_playbooks()["upstream-app-down"]
    session = Session.start(playbook, Journal.for_session("s3", tmp_path),
                            values={"namespace": "default", "service": "httpbin"})

    record = session.run_check(Runner(kubeconfig=kubeconfig), timeout=20)

    assert record.result == COULD_NOT_RUN
    assert "cannot reach the Kubernetes API server" in record.reason
    assert "127.0.0.1:1 was refused" in record.reason


def test_mutating_check_is_refused(tmp_path, counter_playbook, target):
    session = _session(tmp_path, counter_playbook)
    session.mark_shown()
    session.advance()

    record = session.run_check(Runner())

    assert record.result == COULD_NOT_RUN
    assert "changes state" in record.reason
    assert target.posts == []


def test_answers_branch_and_back(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)
    session.mark_shown()
    session.advance()
    session.mark_shown()
    session.advance()

    session.answer("No")
    session.advance()
    assert session.current.id == "why"

    session.back()
    assert session.current.id == "choose"
    assert session.record_of("choose") is None
    session.answer("Yes")
    session.advance()
    assert session.current.id == "change"


def test_unknown_answer_rejected(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)
    session.mark_shown()
    session.advance()
    session.mark_shown()
    session.advance()

    with pytest.raises(SessionError, match="Maybe"):
        session.answer("Maybe")


def test_missing_value_is_asked(tmp_path):
    playbook = load_playbooks()["upstream-app-down"]
    session = Session.start(playbook, Journal.for_session("s4", tmp_path), values={"namespace": "default"})

    assert session.missing_values() == ["service"]
    with pytest.raises(SessionError, match="service"):
        session.run_check(Runner())

    session.set_value("service", "httpbin")
    assert session.missing_values() == []
    assert session.command_of(session.current)[-3] == "kubernetes.io/service-name=httpbin"


def _to_remediation(session: Session) -> None:
    session.mark_shown()
    session.advance()
    session.mark_shown()
    session.advance()
    session.answer("Yes")
    session.advance()
    assert session.current.id == "change"


# --- safety ---


def test_remediation_runs_after_confirmation(tmp_path, counter_playbook, target):
    session = _session(tmp_path, counter_playbook)
    _to_remediation(session)
    runner = Runner()

    plan = session.plan_remediation(runner)
    assert plan.dry_run_result.ok
    assert target.posts == []
    confirmation = session.confirm(plan)
    record = session.run_remediation(runner, confirmation)

    assert record.result == APPLIED
    assert target.posts == ["/counter"]
    session.advance()
    assert session.current.id == "read"
    assert session.run_check(runner).result == PASSED
    assert session.verified == ["change"]
    session.advance()
    assert session.finished


def test_no_mutation_without_confirmation(tmp_path, counter_playbook, target):
    session = _session(tmp_path, counter_playbook)
    _to_remediation(session)
    runner = Runner()
    plan = session.plan_remediation(runner)

    forged = Confirmation("change", plan.command, "other-context", "apply")
    with pytest.raises(MutationRefused):
        session.run_remediation(runner, forged)
    wrong_step = Confirmation("read", plan.command, "kind-lab", "apply")
    with pytest.raises(MutationRefused):
        session.run_remediation(runner, wrong_step)
    changed = Confirmation("change", plan.rollback, "kind-lab", "apply")
    with pytest.raises(MutationRefused):
        session.run_remediation(runner, changed)

    assert target.posts == []
    entries = _entries(session)
    assert not [entry for entry in entries if entry.kind == "command" and entry.data["allow_mutation"]]


def test_every_mutation_follows_its_confirmation(tmp_path, counter_playbook, target):
    session = _session(tmp_path, counter_playbook)
    _to_remediation(session)
    runner = Runner()
    plan = session.plan_remediation(runner)
    session.run_remediation(runner, session.confirm(plan))
    session.run_remediation(runner, session.confirm(plan, action="rollback"))

    confirmed: list[list[str]] = []
    for entry in _entries(session):
        if entry.kind == "confirmation":
            confirmed.append(entry.data["argv"])
        if entry.kind == "command" and entry.data["allow_mutation"]:
            assert entry.data["argv"] in confirmed, entry.data
    assert target.posts == ["/counter", "/undo"]


def test_read_only_refuses_remediation(tmp_path, counter_playbook, target):
    session = _session(tmp_path, counter_playbook, read_only=True)
    _to_remediation(session)

    with pytest.raises(MutationRefused, match="read-only"):
        session.plan_remediation(Runner())

    assert session.record_of("change").result == REFUSED
    assert target.posts == []


def test_production_needs_resource_name(tmp_path, counter_playbook, target):
    session = _session(tmp_path, counter_playbook, context=PROD, production_contexts=("prod-*",))
    _to_remediation(session)
    plan = session.plan_remediation(Runner())
    assert plan.production

    with pytest.raises(MutationRefused, match="type"):
        session.confirm(plan, typed_name="")
    confirmation = session.confirm(plan, typed_name=plan.resource)

    assert confirmation.context == "prod-eu"
    assert plan.resource == f"http://127.0.0.1:{target.server_address[1]}/counter"


def test_context_change_stops_mutations(tmp_path, counter_playbook, target):
    session = _session(tmp_path, counter_playbook)
    _to_remediation(session)
    runner = Runner()
    plan = session.plan_remediation(runner)
    confirmation = session.confirm(plan)

    with pytest.raises(MutationRefused, match="changed"):
        session.run_remediation(runner, confirmation, context_now=PROD)
    with pytest.raises(MutationRefused, match="changed"):
        session.confirm(plan)
    assert target.posts == []

    session.accept_context(PROD)
    with pytest.raises(MutationRefused):
        session.run_remediation(runner, confirmation, context_now=PROD)  # confirmed in the old context
    session.run_remediation(runner, session.confirm(plan, context_now=PROD), context_now=PROD)
    assert target.posts == ["/counter"]


# --- journal and resume ---


def test_resume_restores_answers_and_values(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)
    session.mark_shown()
    session.advance()
    session.mark_shown()
    session.advance()
    session.answer("Yes")
    session.advance()

    resumed = Session.resume(Journal(session.journal.path), {"counter": counter_playbook})

    assert resumed.current.id == "change"
    assert resumed.record_of("choose").result == ANSWERED
    assert resumed.record_of("choose").answer == "Yes"
    assert resumed.record_of("read").result == SHOWN
    assert resumed.values["name"] == "counter"
    assert resumed.path == ["read", "sneaky", "choose", "change"]


def test_resume_skips_corrupt_line(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)
    session.mark_shown()
    with session.journal.path.open("a") as handle:
        handle.write('{"v": 1, "seq": 99, "kind": "step_res')
    journal = Journal(session.journal.path)

    resumed = Session.resume(journal, {"counter": counter_playbook})

    assert resumed.current.id == "read"
    assert resumed.record_of("read").result == SHOWN
    assert len(resumed.problems) == 1
    assert "corrupt" in resumed.problems[0].message


def test_resume_after_back(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)
    session.mark_shown()
    session.advance()
    session.back()

    resumed = Session.resume(Journal(session.journal.path), {"counter": counter_playbook})

    assert resumed.path == ["read"]
    assert resumed.record_of("read") is None


def test_resume_with_other_context_stops_mutations(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)

    resumed = Session.resume(Journal(session.journal.path), {"counter": counter_playbook}, context=PROD)

    assert resumed.context_changed_to == PROD


def test_resume_without_start_fails(tmp_path, counter_playbook):
    path = tmp_path / "x" / "journal.jsonl"
    path.parent.mkdir()
    path.write_text("garbage\n")

    with pytest.raises(SessionError, match="session_started"):
        Session.resume(Journal(path), {"counter": counter_playbook})


def test_summary_lists_state(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)
    session.mark_shown()

    summary = session_summary(session.journal.path)

    assert summary["playbook"] == "counter"
    assert summary["state"] == "open"
    assert summary["step"] == "read"
    assert summary["context"] == "kind-lab"


# --- context and configuration ---


def _kubeconfig(folder: Path, context: str) -> Path:
    path = folder / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c1", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": context, "context": {"cluster": "c1", "user": "u1", "namespace": "shop"}}],
        "users": [{"name": "u1", "user": {"token": "lab-token"}}],
    }))
    return path


def test_current_context_from_kubeconfig(tmp_path):
    path = _kubeconfig(tmp_path, "prod-eu")

    context = current_kube_context({"KUBECONFIG": str(path)})

    assert context == KubeContext("prod-eu", "c1", "shop")


def test_production_patterns(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("production_contexts: [prod-eu, 'live-*']\n")

    patterns, problems = load_production_contexts(config)

    assert problems == []
    assert is_production("live-us", patterns)
    assert not is_production("staging", patterns)


def test_invalid_config_reported(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("production_contexts: prod\n")

    patterns, problems = load_production_contexts(config)

    assert patterns == ()
    assert "production_contexts" in problems[0].message


def test_deployment_from_pod_name():
    engine = load_engine()
    incident = REPOSITORY / "tests" / "data" / "recorded" / "oom-incident"
    read = read_paths([incident], engine.rulebook.signatures)
    diagnosis = diagnose(read.facts, engine.rulebook, engine.registry, read.observations)

    values = values_from_facts(diagnosis.top, read.facts)

    assert values["pod"] == "checkout-7c9d8b6f5-x2x7k"
    assert values["deployment"] == "checkout"
    assert values["namespace"] == "shop"


def test_resume_back_from_verify(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)
    _to_remediation(session)
    runner = Runner()
    session.run_remediation(runner, session.confirm(session.plan_remediation(runner)))
    session.advance()
    assert session.path == ["read", "sneaky", "choose", "change", "read"]
    session.back()

    resumed = Session.resume(Journal(session.journal.path), {"counter": counter_playbook})

    assert resumed.path == ["read", "sneaky", "choose", "change"]
    assert resumed.current.id == "change"


def test_output_streams_while_running(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)
    chunks: list[str] = []

    record = session.run_check(Runner(), on_output=chunks.append)

    assert "".join(chunks) == record.commands[0].output


def test_judgement_withdraws_verification(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)
    _to_remediation(session)
    runner = Runner()
    session.run_remediation(runner, session.confirm(session.plan_remediation(runner)))
    session.advance()
    assert session.run_check(runner).result == PASSED
    assert session.verified == ["change"]

    record = session.judge(False)

    assert record.result == FAILED
    assert record.commands[0].output == "state: 1\n"
    assert session.verified == []
    resumed = Session.resume(Journal(session.journal.path), {"counter": counter_playbook})
    assert resumed.verified == []
    assert resumed.record_of("read").result == FAILED


def test_resume_back_after_end(tmp_path, counter_playbook):
    session = _session(tmp_path, counter_playbook)
    _to_remediation(session)
    session.skip_remediation()
    session.advance()
    session.read_note()
    session.advance()
    assert session.finished
    session.back()

    resumed = Session.resume(Journal(session.journal.path), {"counter": counter_playbook})

    assert not resumed.finished
    assert resumed.current.id == "change"
