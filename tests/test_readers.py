"""Inputs are recognised by content; unreadable ones are listed, never dropped."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import yaml

from doctor.parsers.istio import IstioResource
from doctor.parsers.kube import PodInfo
from doctor.readers import read_paths
from doctor.scan import load_engine

DATA = Path(__file__).parent / "data"
POD_JSON = DATA / "cases" / "20-oom-sidecar-memory-limit-many-tcp-services" / "pod.json"
ACCESS_LOG = DATA / "corpus" / "access-logs" / "37-istio-1.2x-text-503-UO-overflow-fortio.log"


def _read(*paths: Path):
    return read_paths(list(paths), load_engine().rulebook.signatures)


def test_kind_from_content_not_name(tmp_path):
    renamed = tmp_path / "notes.yaml"
    renamed.write_bytes(ACCESS_LOG.read_bytes())

    result = _read(renamed)

    assert [item.kind for item in result.inputs] == ["envoy-access-log"]


def test_mixed_object_list_read_by_both(tmp_path):
    policy = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
              "metadata": {"name": "default", "namespace": "istio-system"},
              "spec": {"mtls": {"mode": "STRICT"}}}
    items = [json.loads(POD_JSON.read_text()), policy]
    mixed = tmp_path / "get-all.yaml"
    mixed.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))

    result = _read(mixed)

    assert len(result.facts.of(PodInfo)) == 1
    assert [item.kind for item in result.facts.of(IstioResource)] == ["PeerAuthentication"]
    assert result.facts.problems == []


def test_binary_and_missing_inputs_skipped(tmp_path):
    binary = tmp_path / "capture.pcap"
    binary.write_bytes(b"\xd4\xc3\xb2\xa1\x00\x00\x00\x00")

    result = _read(binary, tmp_path / "absent.log")
    reasons = {Path(item.source).name: item.reason for item in result.facts.skipped}

    assert reasons["capture.pcap"] == "binary file, not text"
    assert reasons["absent.log"] == "no such file or folder"


def test_invalid_utf8_reported_and_read(tmp_path):
    broken = tmp_path / "access.log"
    broken.write_bytes(ACCESS_LOG.read_bytes().replace(b"fortio", b"fort\xffio", 1))

    result = _read(broken)

    assert [item.kind for item in result.inputs] == ["envoy-access-log"]
    assert any("not valid UTF-8" in problem.message for problem in result.facts.problems)


def test_tarball_members_read(tmp_path):
    archive = tmp_path / "evidence.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(ACCESS_LOG, arcname="logs/access.log")
        handle.add(POD_JSON, arcname="kubernetes/pod.json")

    result = _read(archive)
    kinds = {item.source: item.kind for item in result.inputs}

    assert kinds == {f"{archive}:logs/access.log": "envoy-access-log",
                     f"{archive}:kubernetes/pod.json": "kubernetes-pods"}
