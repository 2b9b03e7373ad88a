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
