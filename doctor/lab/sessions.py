"""Which playbooks a guided session uses when it runs on a capture of the mesh lab.

The lab's playbooks (doctor/lab/playbooks/) remediate the running lab through
`mesh-doctor lab fix` and verify through `mesh-doctor lab probe`. They make
no sense against a cluster, so they ship apart from playbooks/. A bundle the
lab daemon captured (`mesh-doctor lab capture`) is marked by the end of its
manifest's description. On such a bundle the lab's playbook of a cause replaces the
shipped one, and a cause without a lab playbook keeps the shipped one. A
`lab practice` bundle does not count: its lab stops before the session.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from doctor.bundle import BundleError, read_manifest
from doctor.playbooks import Playbook, load_playbooks

logger = logging.getLogger(__name__)

LAB_PLAYBOOKS_DIR = Path(__file__).resolve().parent / "playbooks"
# The end of the description of a bundle the lab daemon captured.
RUNNING_LAB_MARK = " (captured from the running lab)"


def is_lab_capture(path: Path) -> bool:
    """Return whether `path` is a bundle folder the running lab daemon captured."""
    if not path.is_dir():
        return False
    try:
        manifest = read_manifest(path)
    except BundleError:
        return False
    return str(manifest.get("description", "")).endswith(RUNNING_LAB_MARK)


def playbooks_for(paths: Sequence[Path], directory: Path | None = None) -> dict[str, Playbook]:
    """Load the playbooks of a session on `paths`; raises RuleLoadError listing every problem.

    `directory` replaces the shipped playbooks and turns the lab's off, so a
    caller that names its playbooks gets exactly those.
    """
    playbooks = load_playbooks(directory)
    if directory is None and any(is_lab_capture(Path(path)) for path in paths):
        lab = load_playbooks(LAB_PLAYBOOKS_DIR)
        logger.info("lab capture: the lab's playbooks replace %s", ", ".join(sorted(lab)))
        playbooks.update(lab)
    return playbooks
