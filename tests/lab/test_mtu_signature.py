"""The jumbo-MTU signature on real `ip -d link show` output from the lab's MTU namespaces.

Every `ip link` listing has a loopback at MTU 65536 and `maxmtu 65535`;
only the server veth's MTU 9000 is a jumbo path MTU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from doctor.model import Document
from doctor.parsers import signatures
from doctor.scan import load_engine

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded" / "mtu-lab"
CASE_26 = Path(__file__).resolve().parents[1] / "data" / "cases" / "26-mtu-calico-jumbo-frames-webhook-timeout"


@pytest.fixture(scope="module")
def catalogue():
    return [entry for entry in load_engine().rulebook.signatures if entry.id == "traffic-cni-jumbo-mtu"]


def _matched_lines(path: Path, catalogue) -> list[int]:
    result = signatures.scan(Document(str(path), path.read_text()), catalogue)
    return [match.line for match in result.facts]


def test_jumbo_veth_matches(catalogue):
    lines = (RECORDED / "ip-link-server.txt").read_text().splitlines()

    matched = _matched_lines(RECORDED / "ip-link-server.txt", catalogue)

    assert matched == [3]
    assert "mtu 9000" in lines[2]


def test_loopback_and_maxmtu_do_not_match(catalogue):
    assert _matched_lines(RECORDED / "ip-link-client.txt", catalogue) == []


def test_calico_jumbo_setting_still_matches(catalogue):
    assert _matched_lines(CASE_26 / "cni-config.txt", catalogue) == [3]
