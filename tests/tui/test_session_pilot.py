"""Guided sessions in the TUI: from a finding of the examples, and the gate before every change.

The gate tests use a playbook whose change is a real curl POST to a server
on 127.0.0.1 that records every POST. No key sequence short of the
confirmation dialog's run button may make that POST happen.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from doctor.journal import read_journal
from doctor.runner import Runner
from doctor.session import ANSWERED, COULD_NOT_RUN, PASSED, REFUSED, KubeContext
from doctor.tui.app import SessionOptions, build_app
from doctor.tui.screens.confirm import ConfirmChange, ConfirmContext
from doctor.tui.screens.session import SessionScreen
from tui_helpers import FIXED_NOW, run_pilot, static_text, wait_for_scan

LAB = KubeContext("kind-lab", "kind", "default")
PROD = KubeContext("prod-eu", "eu-cluster", "default")

COUNTER_PLAYBOOK = """
id: upstream-app-down
title: Change the counter
causes: [upstream-app-down]
steps:
  - id: choose
    kind: ask
    question: Change it?
    answers:
      - {{label: "Yes", next: change}}
      - {{label: "No", next: read}}
  - id: change
    kind: remediate
    title: Change the counter of {{service}}
    command: [curl, --silent, --fail, --noproxy, "*", -X, POST, "http://127.0.0.1:{port}/{{service}}"]
    dry_run: [curl, --silent, --fail, --noproxy, "*", "http://127.0.0.1:{port}/{{service}}"]
    rollback: [curl, --silent, --fail, --noproxy, "*", -X, POST, "http://127.0.0.1:{port}/undo"]
    verify: read
  - id: read
    kind: check
    title: Read the counter
    command: [curl, --silent, --fail, --noproxy, "*", "http://127.0.0.1:{port}/{{service}}"]
    look_for: the state line
"""


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches on
        self._answer(f"posts: {len(self.server.posts)}\n".encode())

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
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    server.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def gate_app(tmp_path, target, monkeypatch):
    """Build the app on the 503 example with the counter playbook; `contexts` lists what read_context returns."""
    from tui_helpers import REPOSITORY

    monkeypatch.chdir(REPOSITORY)
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "counter.yaml").write_text(COUNTER_PLAYBOOK.format(port=target.server_address[1]))

    def make(*, read_only: bool = False, contexts: list[KubeContext] | None = None,
             production: tuple[str, ...] = ()):
        queue = list(contexts or [LAB])

        def read_context() -> KubeContext:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        options = SessionOptions(journal_root=tmp_path / "sessions", runner=Runner(),
                                 read_context=read_context, production_contexts=production,
                                 playbooks_dir=folder, new_id=lambda: "gate")
        return build_app([Path("examples/503-upstream-down")], read_only=read_only,
                         export_dir=tmp_path, clock=lambda: FIXED_NOW, sessions=options)

    return make


async def _open_session(pilot) -> SessionScreen:
    await wait_for_scan(pilot)
    await pilot.press("enter", "g")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, SessionScreen)
    return screen


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@run_pilot
async def test_keys_alone_never_change(gate_app, target, tmp_path):
    app = gate_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_session(pilot)
        await pilot.press("1")
        assert screen.session.current.id == "change"

        await pilot.press("a")
        await _settle(pilot)
        assert isinstance(app.screen, ConfirmChange)
        await pilot.press("enter")  # Cancel has the focus
        await _settle(pilot)
        assert isinstance(app.screen, SessionScreen)

        await pilot.press("a")
        await _settle(pilot)
        await pilot.press("escape")
        await _settle(pilot)
        for key in "rmunbkc123456789":
            await pilot.press(key)
            await _settle(pilot)
        assert target.posts == []

    journal = read_journal(tmp_path / "sessions" / "gate" / "journal.jsonl").entries
    assert not [entry for entry in journal if entry.kind == "confirmation"]
    assert not [entry for entry in journal if entry.kind == "command" and entry.data["allow_mutation"]]


@run_pilot
async def test_run_button_applies_and_verifies(gate_app, target):
    app = gate_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_session(pilot)
        await pilot.press("1", "a")
        await _settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmChange)
        details = static_text(dialog.query_one("#confirm-details"))
        assert "-X POST" in details
        assert "posts: 0" in details  # the dry run's output
        assert "/undo" in details  # the rollback

        await pilot.click("#confirm-run")
        await _settle(pilot)
        assert target.posts == ["/httpbin"]
        await pilot.press("n", "r")
        await _settle(pilot)
        assert screen.session.verified == ["change"]
        assert "posts: 1" in screen.session.record_of("read").commands[0].output
        shown = [strip.text for strip in screen.query_one("#step-output").lines]
        assert "posts: 1" in shown  # streamed in while the command ran


@run_pilot
async def test_read_only_refuses_change(gate_app, target):
    app = gate_app(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_session(pilot)
        await pilot.press("1", "a")
        await _settle(pilot)

        assert isinstance(app.screen, SessionScreen)
        assert screen.session.record_of("change").result == REFUSED
        assert "read-only" in static_text(screen.query_one("#session-context"))
        assert target.posts == []


@run_pilot
async def test_production_needs_typed_name(gate_app, target):
    app = gate_app(contexts=[PROD], production=("prod-*",))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_session(pilot)
        assert screen.query_one("#session-context").has_class("-production")
        await pilot.press("1", "a")
        await _settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmChange)
        assert dialog.query_one("#confirm-run").disabled

        dialog.query_one("#confirm-name").focus()
        await pilot.press(*"wrong")
        assert dialog.query_one("#confirm-run").disabled
        dialog.query_one("#confirm-name").value = ""
        resource = dialog.plan.resource
        await pilot.press(*resource)
        assert not dialog.query_one("#confirm-run").disabled
        await pilot.click("#confirm-run")
        await _settle(pilot)
        assert target.posts == ["/httpbin"]


@run_pilot
async def test_context_change_stops_change(gate_app, target):
    app = gate_app(contexts=[LAB, PROD])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_session(pilot)
        await pilot.press("1", "a")
        await _settle(pilot)

        assert isinstance(app.screen, ConfirmContext)
        await pilot.press("enter")  # "Keep stopped" has the focus
        await _settle(pilot)
        assert screen.session.context_changed_to == PROD
        assert "CHANGED" in static_text(screen.query_one("#session-context"))
        assert target.posts == []

        await pilot.press("c")
        await _settle(pilot)
        await pilot.click("#context-accept")
        await _settle(pilot)
        assert screen.session.context == PROD
        await pilot.press("a")
        await _settle(pilot)
        assert isinstance(app.screen, ConfirmChange)


@run_pilot
async def test_example_session_walks_shipped_playbook(app_factory, tmp_path, monkeypatch):
    """The 503 example with the shipped playbook: kubectl finds no cluster, so checks could not run."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: kind-lab\n"
                          "clusters: [{name: c1, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                          "contexts: [{name: kind-lab, context: {cluster: c1, user: u1}}]\n"
                          "users: [{name: u1, user: {token: lab-token}}]\n")
    options = SessionOptions(journal_root=tmp_path / "sessions", runner=Runner(kubeconfig=kubeconfig),
                             read_context=lambda: LAB, new_id=lambda: "example")
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    app = build_app([Path("examples/503-upstream-down")], read_only=False, export_dir=tmp_path,
                    clock=lambda: FIXED_NOW, sessions=options)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_session(pilot)
        session = screen.session
        assert session.current.id == "endpoints"
        command = static_text(screen.query_one("#step-body"))
        assert "kubernetes.io/service-name=httpbin" in command

        await pilot.press("r")
        await _settle(pilot)
        assert session.record_of("endpoints").result == COULD_NOT_RUN
        assert "cannot reach the Kubernetes API server" in session.record_of("endpoints").reason
        await pilot.press("p")  # the engineer reads the output and overrides the exit status
        assert session.record_of("endpoints").result == PASSED
        assert "the engineer read the output" in session.record_of("endpoints").reason
        await pilot.press("n", "m", "n", "m", "n")
        assert session.current.id == "recent-deploy"
        await pilot.press("2")
        assert session.record_of("recent-deploy").result == ANSWERED
        assert session.current.id == "ports"
        await pilot.press("b")
        assert session.current.id == "recent-deploy"
        assert "step 4 of 7" in static_text(screen.query_one("#session-progress"))


@run_pilot
async def test_context_poll_shows_change(gate_app, target, monkeypatch):
    import doctor.tui.screens.session as session_screen

    monkeypatch.setattr(session_screen, "CONTEXT_POLL_S", 0.05)
    app = gate_app(contexts=[LAB, LAB, PROD])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_session(pilot)
        for _ in range(200):
            if screen.session.context_changed_to is not None:
                break
            await pilot.pause(0.05)

        assert screen.session.context_changed_to == PROD
        assert "CHANGED to prod-eu" in static_text(screen.query_one("#session-context"))
        journal = read_journal(screen.session.journal.path).entries
        assert any("context_changed" in entry.data for entry in journal if entry.kind == "note")
