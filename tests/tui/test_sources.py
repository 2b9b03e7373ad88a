"""Reading inputs for the evidence browser: plain files, archive members, masking, limits."""

from __future__ import annotations

import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest

from doctor.tui import sources

REPOSITORY = Path(__file__).resolve().parents[2]
POLICY = REPOSITORY / "tests/data/cases/15-401-keycloak-issuer-mismatch-jwks-selfsigned/policy-before.yaml"


def test_plain_file_lines():
    lines, truncated = sources.read_source_lines(str(POLICY))
    assert lines == POLICY.read_text(encoding="utf-8").splitlines()
    assert truncated is False


def test_archive_member_lines(tmp_path):
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as packed:
        packed.add(POLICY, arcname="istio/policy.yaml")

    lines, _ = sources.read_source_lines(f"{archive}:istio/policy.yaml")
    assert lines == POLICY.read_text(encoding="utf-8").splitlines()

    with pytest.raises(FileNotFoundError):
        sources.read_source_lines(f"{archive}:istio/absent.yaml")


def test_missing_file_raises_os_error(tmp_path):
    with pytest.raises(OSError):
        sources.read_source_lines(str(tmp_path / "absent.log"))


def test_jwt_signature_masked(tmp_path):
    now = datetime.now(timezone.utc)
    token = jwt.encode({"iss": "https://issuer.example", "exp": now - timedelta(hours=1)},
                       "test-only-secret-of-at-least-32-bytes", algorithm="HS256")
    header, claims, signature = token.split(".")
    log = tmp_path / "client.txt"
    log.write_text(f"first line\nauthorization: Bearer {token}\ncurl -H 'x: {token}'\n",
                   encoding="utf-8")

    lines, _ = sources.read_source_lines(str(log))

    assert len(lines) == 3
    assert signature not in "\n".join(lines)
    assert lines[0] == "first line"
    assert f"{header}.{claims}" in lines[2]


def test_control_characters_and_tabs(tmp_path):
    path = tmp_path / "raw.log"
    path.write_bytes(b"a\tb\x1b[31mred\x00\n\xff\xfeend\n")

    lines, _ = sources.read_source_lines(str(path))

    assert lines[0] == "a   b\N{REPLACEMENT CHARACTER}[31mred\N{REPLACEMENT CHARACTER}"
    assert lines[1] == "\N{REPLACEMENT CHARACTER}\N{REPLACEMENT CHARACTER}end"


def test_long_input_truncated(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_READ_BYTES", 10)
    path = tmp_path / "long.log"
    path.write_text("0123456789\nabcdef\n", encoding="utf-8")

    lines, truncated = sources.read_source_lines(str(path))

    assert truncated is True
    assert lines == ["0123456789"]
