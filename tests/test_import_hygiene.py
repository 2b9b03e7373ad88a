"""The core imports no UI, terminal, command-runner or cluster-client library."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = [
    "doctor.model",
    "doctor.facts",
    "doctor.diagnosis",
    "doctor.rules",
    "doctor.playbooks",
    "doctor.engine",
    "doctor.readers",
    "doctor.report",
    "doctor.scan",
    "doctor.checks.defaults",
    "doctor.logscan",
    "doctor.logstats",
    "doctor.journal",
    "doctor.session",
]
FORBIDDEN = ["textual", "rich", "sh", "kubernetes"]


def test_core_loads_without_io_libraries():
    script = (
        "import sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    __import__(name)\n"
        f"loaded = [name for name in {FORBIDDEN!r} if name in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=60, check=False)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "", f"the core loaded: {completed.stdout.strip()}"
