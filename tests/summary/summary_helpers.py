"""Real guided sessions for the incident summary tests, and the checks every output gets.

`record_read_only_session` walks the shipped upstream-app-down playbook on
examples/503-upstream-down with the real `Session` and the real command
runner. kubectl runs for real against a kubeconfig whose API server is a
closed port on 127.0.0.1, so every check records how kubectl failed, the
engineer answers the questions, and the read-only session refuses the
rollback: the session an engineer without write access leaves behind.
"""

from __future__ import annotations

import json
import socket
import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path

import jsonschema

from doctor.journal import Journal
from doctor.playbooks import load_playbooks
from doctor.runner import Runner
from doctor.scan import load_engine, scan_paths
from doctor.session import KubeContext, MutationRefused, Session

REPOSITORY = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPOSITORY / "docs" / "schema" / "incident-summary.schema.json"
RECORDED_SESSION = REPOSITORY / "tests" / "data" / "summary" / "503-read-only-session" / "journal.jsonl"
EXAMPLE_REPORTS = REPOSITORY / "examples" / "reports"
SAMPLE = "examples/503-upstream-down"
FIXED_NOW = datetime(2026, 12, 4, 21, 30, 0, tzinfo=timezone.utc)


def validate(data: dict) -> None:
    """Raise jsonschema.ValidationError when `data` breaks the committed schema."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(data)


def closed_port() -> int:
    """Return a loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_unreachable_kubeconfig(path: Path) -> Path:
    port = closed_port()
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
contexts:
- name: lab-readonly
  context: {{cluster: lab, user: oncall, namespace: default}}
current-context: lab-readonly
users:
- name: oncall
  user: {{token: "seeded-kubeconfig-token-never-in-output"}}
""", encoding="utf-8")
    return path


def record_read_only_session(session_root: Path, kubeconfig: Path, session_id: str = "session-503"
                             ) -> Path:
    """Walk the upstream-app-down playbook read-only and return the journal's path."""
    diagnosis = scan_paths([Path(SAMPLE)], engine=load_engine())
    finding = diagnosis.top
    assert finding is not None and finding.cause_id == "upstream-app-down"
    playbook = load_playbooks()["upstream-app-down"]
    journal = Journal.for_session(session_id, root=session_root)
    runner = Runner(kubeconfig=kubeconfig, default_timeout_s=20)
    values = {"namespace": "default", "service": "httpbin", "deployment": "httpbin",
              "pod": "httpbin-5c7d9f8b6-q4w2n", "container": "httpbin"}
    session = Session.start(playbook, journal, finding=finding, paths=[SAMPLE], values=values,
                            read_only=True, context=KubeContext("lab-readonly", "lab", "default"),
                            actor="oncall")

    while session.current is not None:
        step = session.current
        if step.kind == "check":
            session.run_check(runner, timeout=20)
        elif step.kind == "ask":
            session.answer("Yes")
        elif step.kind == "remediate":
            try:
                session.plan_remediation(runner, timeout=20)
            except MutationRefused:
                session.finish("read-only session: the rollback is handed over")
                break
        else:
            session.read_note()
        session.advance()
    return journal.path


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB or RGBA PNG without interlace into (width, height, rows of RGB(A))."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position = 8
    chunks: dict[bytes, list[bytes]] = {}
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunks.setdefault(kind, []).append(data[position + 8:position + 8 + length])
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert depth == 8 and colour in (2, 6) and interlace == 0, "unsupported PNG layout"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1:start + 1 + stride])
        for index in range(stride):
            left = line[index - channels] if index >= channels else 0
            up = previous[index]
            upper_left = previous[index - channels] if index >= channels else 0
            if kind == 1:
                line[index] = (line[index] + left) & 0xFF
            elif kind == 2:
                line[index] = (line[index] + up) & 0xFF
            elif kind == 3:
                line[index] = (line[index] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - upper_left
                distances = (abs(estimate - left), abs(estimate - up), abs(estimate - upper_left))
                nearest = (left, up, upper_left)[distances.index(min(distances))]
                line[index] = (line[index] + nearest) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(row) for row in rows]


OOM_INCIDENT = "tests/data/recorded/oom-incident"
RECORDED_REPLAY_SESSION = REPOSITORY / "tests" / "data" / "summary" / "oom-replay-session" / \
    "journal.jsonl"


def record_replay_session(session_root: Path, kubeconfig: Path, session_id: str = "oom-replay"
                          ) -> Path:
    """Walk the proxy-memory-limit-too-low playbook on the OOM incident against a replay server.

    kubectl reads the replayed pods for real, and `kubectl top` fails because
    the server has no metrics API. A step whose values are unknown is shown,
    not run. The server-side dry run of the change fails in discovery, so the
    engineer skips the change and hands it over.
    """
    from doctor.session import current_kube_context, values_from_facts
    from doctor.readers import read_paths
    from doctor.engine import diagnose

    engine = load_engine()
    read = read_paths([Path(OOM_INCIDENT)], engine.rulebook.signatures)
    diagnosis = diagnose(read.facts, engine.rulebook, engine.registry, read.observations)
    finding = diagnosis.top
    assert finding is not None and finding.cause_id == "proxy-memory-limit-too-low"
    playbook = load_playbooks()[finding.playbook]
    journal = Journal.for_session(session_id, root=session_root)
    runner = Runner(kubeconfig=kubeconfig, default_timeout_s=20)
    context = current_kube_context({"KUBECONFIG": str(kubeconfig)})
    session = Session.start(playbook, journal, finding=finding, paths=[OOM_INCIDENT],
                            values=values_from_facts(finding, read.facts), context=context,
                            actor="oncall")

    while session.current is not None:
        step = session.current
        if step.kind == "check":
            if session.missing_values(step):
                session.mark_shown()
            else:
                session.run_check(runner, timeout=20)
        elif step.kind == "ask":
            session.answer(step.answers[0].label)
        elif step.kind == "remediate":
            plan = session.plan_remediation(runner, timeout=20)
            reason = "the server-side dry run did not succeed; handed over to the owning team"
            if plan.dry_run_result is not None and plan.dry_run_result.status == "ok":
                reason = "the engineer handed the change over to the owning team"
            session.skip_remediation(reason)
        else:
            session.read_note()
        session.advance()
    return journal.path


def record_all() -> None:
    """Record both sessions again into tests/data/summary; run from the repository."""
    import shutil
    import sys
    import tempfile

    sys.path.insert(0, str(REPOSITORY))
    from tests.replay.scenario import NAMESPACE, oom_incident
    from tests.replay.server import ReplayServer

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        journal = record_read_only_session(folder / "sessions",
                                           write_unreachable_kubeconfig(folder / "kubeconfig"))
        shutil.copy(journal, RECORDED_SESSION)

        (folder / "replay").mkdir()
        server = ReplayServer(oom_incident(), workdir=folder / "replay").start()
        try:
            kubeconfig = server.write_kubeconfig(folder / "replay-kubeconfig", namespace=NAMESPACE)
            journal = record_replay_session(folder / "sessions", kubeconfig)
        finally:
            server.stop()
        assert server.writes() == [], "the replay server received a write"
        shutil.copy(journal, RECORDED_REPLAY_SESSION)


if __name__ == "__main__":
    record_all()
