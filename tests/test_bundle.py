"""Bundles: writing with redaction, reading back, damaged manifests, and tar.gz packing."""

from __future__ import annotations

import json
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from doctor import bundle
from doctor.bundle import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    BundleError,
    pack_bundle,
    read_bundle,
    read_manifest,
    unpack_bundle,
    write_bundle,
)
from doctor.model import Observation, ProbeStatus

CORPUS = Path(__file__).parent / "data" / "corpus"
ACCESS_LOG = CORPUS / "access-logs" / "38-istio-1.24plus-text-upstream-cluster-raw-bookinfo.log"
STARTED = datetime(2026, 1, 12, 15, 38, 6, tzinfo=timezone.utc)


def _observation(probe_id: str, output: str, status: ProbeStatus = ProbeStatus.OK, **fields) -> Observation:
    values = {
        "argv": ("kubectl", "logs", "productpage-v1-1", "-c", "istio-proxy"),
        "started_at": STARTED,
        "duration_s": 0.25,
        "exit_status": 0 if status is ProbeStatus.OK else None,
        "reason": "",
        "target": "default/productpage-v1-1",
    }
    values.update(fields)
    return Observation(probe_id=probe_id, status=status, output=output, **values)


@pytest.fixture(scope="module")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def signed_token(private_key_pem) -> str:
    return jwt.encode({"iss": "https://issuer.test", "sub": "user", "exp": 1700000000},
                      private_key_pem, algorithm="RS256")


def test_round_trip(tmp_path):
    log_text = ACCESS_LOG.read_text()
    observations = [
        _observation("kubectl.logs", log_text),
        _observation("istioctl.proxy-status", "", ProbeStatus.UNAVAILABLE,
                     argv=("istioctl", "proxy-status"), reason="istioctl not found on PATH; install it"),
    ]

    root = write_bundle(tmp_path / "bundle", observations, {"istio/policy.yaml": "kind: PeerAuthentication\n"})
    documents, read_back = read_bundle(root)

    assert root == tmp_path / "bundle"
    assert [o.probe_id for o in read_back] == ["kubectl.logs", "istioctl.proxy-status"]
    assert read_back[0] == observations[0]
    assert read_back[1].status is ProbeStatus.UNAVAILABLE
    assert read_back[1].reason == "istioctl not found on PATH; install it"
    assert read_back[1].exit_status is None
    assert [Path(d.source).relative_to(root).as_posix() for d in documents] == [
        "observations/01-kubectl.logs-default-productpage-v1-1.txt",
        "istio/policy.yaml",
    ]
    assert documents[0].text == log_text
    assert documents[1].text == "kind: PeerAuthentication\n"


def test_manifest_fields(tmp_path):
    observation = _observation("kubectl.logs", ACCESS_LOG.read_text())

    root = write_bundle(tmp_path / "bundle", [observation], {"logs/app.log": "started\n"},
                        created_at=STARTED, description="bookinfo sample")
    manifest = json.loads((root / MANIFEST_NAME).read_text())

    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["created_at"] == "2026-01-12T15:38:06+00:00"
    assert manifest["tool"]["name"] == "mesh-doctor"
    assert manifest["tool"]["version"]
    assert manifest["description"] == "bookinfo sample"
    assert manifest["files"] == ["logs/app.log"]
    entry = manifest["observations"][0]
    assert entry == {
        "probe_id": "kubectl.logs",
        "argv": ["kubectl", "logs", "productpage-v1-1", "-c", "istio-proxy"],
        "status": "ok",
        "started_at": "2026-01-12T15:38:06+00:00",
        "duration_s": 0.25,
        "exit_status": 0,
        "reason": "",
        "target": "default/productpage-v1-1",
        "output": "observations/01-kubectl.logs-default-productpage-v1-1.txt",
    }


def test_json_output_gets_json_name(tmp_path):
    observation = _observation("envoy-admin.certs", '{"certificates": []}\n', target="")

    root = write_bundle(tmp_path / "bundle", [observation])

    assert (root / "observations" / "01-envoy-admin.certs.json").is_file()


def test_secrets_never_reach_disk(tmp_path, private_key_pem, signed_token):
    signature = signed_token.rsplit(".", 1)[1]
    secret_body = private_key_pem.splitlines()[1]
    observations = [
        _observation("client.curl", f"> Authorization: Bearer {signed_token}\n< HTTP/1.1 401 Unauthorized\n",
                     argv=("curl", "--header", f"Authorization: Bearer {signed_token}", "http://127.0.0.1:1/"),
                     reason=f"stderr: token {signed_token}"),
        _observation("kubectl.get-secret", json.dumps({"kind": "Secret", "data": {"key.pem": "c2VjcmV0"}})),
    ]

    root = write_bundle(tmp_path / "bundle", observations, {"certs/workload.pem": private_key_pem})
    written = "\n".join(path.read_text() for path in root.rglob("*") if path.is_file())

    assert signature not in written
    assert secret_body not in written
    assert "c2VjcmV0" not in written
    assert "<signature masked>" in written
    assert "<private key masked>" in written
    assert signed_token.rsplit(".", 1)[0] in written


def test_failed_probe_is_not_a_document(tmp_path):
    observations = [
        _observation("kubectl.get-pods", "", ProbeStatus.FORBIDDEN, exit_status=1,
                     reason="Error from server (Forbidden): pods is forbidden"),
        _observation("envoy-admin.stats", "", ProbeStatus.TIMED_OUT, reason="timed out after 10 s and was killed"),
    ]

    documents, read_back = read_bundle(write_bundle(tmp_path / "bundle", observations))

    assert documents == []
    assert [o.status for o in read_back] == [ProbeStatus.FORBIDDEN, ProbeStatus.TIMED_OUT]
    assert read_back[0].exit_status == 1


def test_missing_output_becomes_failed(tmp_path):
    root = write_bundle(tmp_path / "bundle", [_observation("kubectl.logs", ACCESS_LOG.read_text())])
    next((root / "observations").iterdir()).unlink()

    documents, observations = read_bundle(root)

    assert documents == []
    assert observations[0].status is ProbeStatus.FAILED
    assert "is missing from the bundle" in observations[0].reason


def test_missing_evidence_file_is_reported(tmp_path):
    root = write_bundle(tmp_path / "bundle", [], {"logs/istio-proxy.log": ACCESS_LOG.read_text()})
    (root / "logs" / "istio-proxy.log").unlink()

    documents, observations = read_bundle(root)

    assert documents == []
    assert len(observations) == 1
    assert observations[0].status is ProbeStatus.FAILED
    assert observations[0].target == "logs/istio-proxy.log"
    assert "missing from the bundle" in observations[0].reason


def test_binary_evidence_file_is_reported(tmp_path):
    root = write_bundle(tmp_path / "bundle", [], {"logs/istio-proxy.log": ACCESS_LOG.read_text()})
    (root / "logs" / "istio-proxy.log").write_bytes(b"\x7fELF\x02\x01\x00\x00" + bytes(64))
    (root / "core.dump").write_bytes(bytes(32))

    documents, observations = read_bundle(root)

    assert documents == []
    assert [o.target for o in observations] == ["logs/istio-proxy.log", "core.dump"]
    assert all(o.status is ProbeStatus.FAILED for o in observations)
    assert "binary file" in observations[0].reason


def test_oversized_output_becomes_failed(tmp_path, monkeypatch):
    root = write_bundle(tmp_path / "bundle", [_observation("kubectl.logs", ACCESS_LOG.read_text())])
    monkeypatch.setattr(bundle, "MAX_FILE_BYTES", 100)

    documents, observations = read_bundle(root)

    assert documents == []
    assert observations[0].status is ProbeStatus.FAILED
    assert "is larger than" in observations[0].reason
    assert "tail" in observations[0].reason


def test_unlisted_file_is_read(tmp_path):
    root = write_bundle(tmp_path / "bundle", [])
    (root / "added-by-hand.log").write_text(ACCESS_LOG.read_text())
    (root / ".hidden").write_text("ignored")

    documents, _ = read_bundle(root)

    assert [Path(d.source).name for d in documents] == ["added-by-hand.log"]


def test_non_empty_folder_is_rejected(tmp_path):
    (tmp_path / "existing.txt").write_text("keep me")

    with pytest.raises(BundleError, match="not an empty folder"):
        write_bundle(tmp_path, [])
    assert (tmp_path / "existing.txt").read_text() == "keep me"


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.txt", "logs/../../x", "manifest.json",
                                  "observations/01-x.txt", "", "logs\\win.txt"])
def test_bad_extra_file_name(tmp_path, name):
    with pytest.raises(BundleError):
        write_bundle(tmp_path / "bundle", [], {name: "text"})
    assert not (tmp_path / "outside.txt").exists()


def test_missing_manifest(tmp_path):
    with pytest.raises(BundleError, match="manifest.json not found"):
        read_bundle(tmp_path)


def test_invalid_manifest_json(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text("{not json")

    with pytest.raises(BundleError, match="is not valid JSON"):
        read_bundle(tmp_path)


def test_unsupported_schema_version(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"schema_version": 99, "observations": [], "files": []}))

    with pytest.raises(BundleError, match="schema_version 99 is not supported"):
        read_manifest(tmp_path)


def test_manifest_entry_errors_name_the_key(tmp_path):
    root = write_bundle(tmp_path / "bundle", [_observation("kubectl.logs", "x\n")])
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    manifest["observations"][0]["status"] = "exploded"
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))

    with pytest.raises(BundleError, match=r"observations\[0\]\.status: 'exploded' is not one of"):
        read_bundle(root)


def test_manifest_path_escape_is_rejected(tmp_path):
    root = write_bundle(tmp_path / "bundle", [])
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    manifest["files"] = ["../../etc/passwd"]
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))

    with pytest.raises(BundleError, match=r"files\[0\].*'\.\./\.\./etc/passwd'"):
        read_bundle(root)


def test_pack_and_unpack(tmp_path):
    root = write_bundle(tmp_path / "incident", [_observation("kubectl.logs", ACCESS_LOG.read_text())],
                        {"logs/app.log": "started\n"}, created_at=STARTED)

    archive = pack_bundle(root)
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
    unpacked = unpack_bundle(archive, tmp_path / "unpacked")
    documents, observations = read_bundle(unpacked)

    assert archive == tmp_path / "incident.tar.gz"
    assert names == ["incident", "incident/logs", "incident/logs/app.log", "incident/manifest.json",
                     "incident/observations", "incident/observations/01-kubectl.logs-default-productpage-v1-1.txt"]
    assert unpacked == tmp_path / "unpacked" / "incident"
    assert observations[0].output == ACCESS_LOG.read_text()
    assert [d.text for d in documents][1] == "started\n"


def test_pack_is_reproducible(tmp_path):
    root = write_bundle(tmp_path / "incident", [_observation("kubectl.logs", "line\n")], created_at=STARTED)

    first = pack_bundle(root, tmp_path / "first.tar.gz").read_bytes()
    second = pack_bundle(root, tmp_path / "second.tar.gz").read_bytes()

    assert first == second


def test_unpack_rejects_traversal(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload.txt"
    payload.write_text("outside")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="../escaped.txt")

    with pytest.raises(BundleError, match="cannot extract"):
        unpack_bundle(archive, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()


def test_unpack_without_manifest(tmp_path):
    archive = tmp_path / "plain.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(ACCESS_LOG, arcname="logs/access.log")

    with pytest.raises(BundleError, match="contains no manifest.json"):
        unpack_bundle(archive, tmp_path / "dest")


def test_multiline_reason_with_header_reads_back(tmp_path):
    reason = "> Authorization: Bearer abc.def.ghi\n< HTTP/1.1 503 Service Unavailable\ncurl: (56) Recv failure"
    observations = [_observation("client.curl", "", ProbeStatus.FAILED, exit_status=56, reason=reason)]

    _, read_back = read_bundle(write_bundle(tmp_path / "bundle", observations))

    assert "abc.def.ghi" not in read_back[0].reason
    assert read_back[0].reason.endswith("curl: (56) Recv failure")
