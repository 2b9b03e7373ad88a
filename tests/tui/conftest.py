"""The app factory of the pilot and snapshot tests: real scans on a fixed clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from doctor.tui.app import MeshDoctorApp, build_app
from tui_helpers import FIXED_NOW, REPOSITORY


@pytest.fixture
def app_factory(tmp_path, monkeypatch):
    """Return a function that builds the app on examples, with relative paths as a user types them.

    The clock is fixed so report names and the diagnosis time do not change
    between runs, and reports go to a temporary folder.
    """
    monkeypatch.chdir(REPOSITORY)

    def make(*paths: str | Path, export_dir: Path | None = None) -> MeshDoctorApp:
        chosen = [Path(path) for path in paths] or [Path("examples/401-jwt-expired")]
        return build_app(chosen, export_dir=export_dir or tmp_path, clock=lambda: FIXED_NOW)

    return make
