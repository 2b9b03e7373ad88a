"""The built wheel carries the rules, playbooks and UI styles as package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_wheel_ships_rules_and_playbooks(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr

    (wheel,) = tmp_path.glob("mesh_doctor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    for rule_file in (ROOT / "rules").glob("*.yaml"):
        assert f"doctor/_rules/{rule_file.name}" in names
    for playbook in (ROOT / "playbooks").glob("*.yaml"):
        assert f"doctor/_playbooks/{playbook.name}" in names
    for playbook in (ROOT / "doctor" / "lab" / "playbooks").glob("*.yaml"):
        assert f"doctor/lab/playbooks/{playbook.name}" in names
    assert "doctor/tui/app.tcss" in names
