"""OOM-kill the lab's server sidecar the way the kernel kills a container over its memory limit.

The sidecar's process moves into a memory cgroup of its own (cgroup v2
`memory.max` when the unified hierarchy has the memory controller, else
cgroup v1 `memory.limit_in_bytes` with its charges moved along). The limit
is set a little above what the process uses now, then admin requests make
Envoy allocate until the kernel's OOM killer ends it, and the cgroup's
counter (`memory.events` oom_kill, or v1 `memory.oom_control` oom_kill)
confirms the kill. Where no memory cgroup can be made, the process gets
SIGKILL instead, which is the signal the OOM killer sends, so the pod
status records the same exit code 137.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from doctor.lab.mesh import MeshLab
from doctor.probes import envoy_admin

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_MEMORY_ROOT = CGROUP_ROOT / "memory"
# Room above the current usage, so Envoy stays under the limit until it allocates more.
HEADROOM_BYTES = 256 * 1024
KILL_TIMEOUT_S = 5.0
OOM_EXIT_CODE = 137


@dataclass(frozen=True)
class KillResult:
    """The way the sidecar died: by the OOM killer under `limit_bytes`, or by SIGKILL for `reason`."""

    oom_killed: bool
    limit_bytes: int | None
    reason: str


class _MemoryCgroup:
    """A memory cgroup made for one process, v2 or v1; `remove` deletes it."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @classmethod
    def create(cls, name: str) -> "_MemoryCgroup":
        """Create the cgroup; raises OSError where the hierarchy is missing or read-only."""
        controllers = CGROUP_ROOT / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            path = CGROUP_ROOT / name
            path.mkdir()
            return cls(path, 2)
        if (V1_MEMORY_ROOT / "memory.limit_in_bytes").exists():
            path = V1_MEMORY_ROOT / name
            path.mkdir()
            try:
                (path / "memory.move_charge_at_immigrate").write_text("3")
            except OSError:
                # Linux 6.x deprecates moving charges and rejects the write; then only
                # what Envoy allocates after the move counts against the limit.
                logger.info("memory cgroup v1 does not move charges here; counting new allocations only")
            return cls(path, 1)
        raise OSError(f"no memory cgroup controller under {CGROUP_ROOT}")

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def usage(self) -> int:
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        return int((self.path / name).read_text())

    def set_limit(self, limit: int) -> None:
        name = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        (self.path / name).write_text(str(limit))

    def oom_kills(self) -> int:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self, timeout: float = KILL_TIMEOUT_S) -> None:
        """Delete the cgroup once the killed process has left it (a zombie stays in it until reaped)."""
        deadline = time.monotonic() + timeout
        while (self.path / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            self.path.rmdir()
        except OSError as error:
            logger.warning("could not remove memory cgroup %s: %s", self.path, error)


def kill_server_sidecar(lab: MeshLab) -> KillResult:
    """OOM-kill the server sidecar (or SIGKILL it where cgroups are unavailable) and record its pod status."""
    assert lab.server is not None
    process = lab.server.process
    result = _oom_kill(lab, process.pid)
    if not result.oom_killed:
        logger.info("SIGKILL for the server sidecar (pid %d): %s", process.pid, result.reason)
        os.kill(process.pid, signal.SIGKILL)
    limit = f"{max(result.limit_bytes // (1024 * 1024), 1)}Mi" if result.limit_bytes else "64Mi"
    lab.kill_server_sidecar(memory_limit=limit, exit_code=OOM_EXIT_CODE, reason="OOMKilled")
    if result.oom_killed:
        lab.notes.append(f"the kernel OOM-killed the server sidecar in a memory cgroup limited to {limit}")
    else:
        lab.notes.append(f"the server sidecar got SIGKILL because {result.reason}")
    return result


def _oom_kill(lab: MeshLab, pid: int) -> KillResult:
    try:
        group = _MemoryCgroup.create(f"mesh-lab-{os.getpid()}-{pid}")
    except OSError as error:
        return KillResult(False, None, f"no memory cgroup could be made: {error}")

    try:
        resident = _resident_bytes(pid)
        group.add(pid)
        charged = group.usage()
        group.set_limit(charged + HEADROOM_BYTES)
        # Without moved charges the pages Envoy already uses stay outside the
        # cgroup, so the limit on its whole memory is its resident size plus the headroom.
        limit = (resident if charged < resident // 2 else charged) + HEADROOM_BYTES
        assert lab.server is not None
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while lab.server.process.is_alive() and time.monotonic() < deadline:
            # Each config dump makes Envoy build the whole configuration as JSON in memory.
            envoy_admin.fetch("/config_dump?include_eds", port=lab.server.admin_port, runner=lab.runner, timeout=2)
        _wait_dead(lab)
        if group.oom_kills() > 0 and not lab.server.process.is_alive():
            return KillResult(True, limit, "")
        return KillResult(False, limit, f"Envoy stayed under the {limit} byte limit for {KILL_TIMEOUT_S:g} s")
    except OSError as error:
        return KillResult(False, None, f"the memory cgroup could not be set up: {error}")
    finally:
        if lab.server.process.is_alive():
            os.kill(lab.server.process.pid, signal.SIGKILL)
            _wait_dead(lab)
        group.remove()


def _resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _wait_dead(lab: MeshLab, timeout: float = 2.0) -> None:
    assert lab.server is not None
    deadline = time.monotonic() + timeout
    while lab.server.process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
