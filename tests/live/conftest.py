"""Fixtures of the live-collection tests: the replay API server with the recorded OOM incident.

Each test gets its own server on 127.0.0.1 (stopped afterwards) and runs the
real kubectl and the kubernetes client against it through a kubeconfig the
server writes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from doctor.scan import Engine, load_engine  # noqa: E402
from tests.replay.scenario import oom_incident  # noqa: E402
from tests.replay.server import ReplayServer  # noqa: E402


@pytest.fixture(scope="session")
def engine() -> Engine:
    return load_engine()


@pytest.fixture
def replay(tmp_path: Path) -> Iterator[Callable[..., ReplayServer]]:
    """Start replay servers of the OOM incident; keyword arguments go to `ReplayServer`."""
    servers: list[ReplayServer] = []

    def start(cluster=None, **kwargs) -> ReplayServer:
        workdir = tmp_path / f"replay-{len(servers)}"
        workdir.mkdir()
        server = ReplayServer(cluster or oom_incident(), workdir=workdir, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
