"""A lab that outlives one command: a daemon owns the mesh, and `mesh-doctor lab` talks to it.

`lab up` starts `python -m doctor.lab.control --state-dir DIR` in a new
session. The daemon starts the `MeshLab`, writes `state.json` (its own pid,
the Envoy pids, the ports, the injected fault) and serves JSON requests,
one per connection, on the Unix socket `control.sock` in the same folder:

    {"op": "status"}                 -> the state
    {"op": "inject", "fault": NAME}  -> restart the sidecars with the fault
    {"op": "capture", "dir": PATH}   -> send traffic, probe, write a bundle
    {"op": "fix", "remedy": NAME, "dry_run": B, "rollback": B, "principal": P}
                                     -> run a remediation (doctor.lab.remedies)
    {"op": "probe", "probe": NAME}   -> run a verify probe: request or handshake
    {"op": "down"}                   -> stop everything and exit

`down` then checks that no process the lab ever started is left, and kills
by pid any that is, so a failed daemon cannot leak an Envoy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import socketserver
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STATE_NAME = "state.json"
SOCKET_NAME = "control.sock"
LOG_NAME = "daemon.log"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# A capture sends the fault's traffic (about 15 s for the MTU fault, the slowest) and runs every probe.
REQUEST_TIMEOUT_S = 120.0


class ControlError(RuntimeError):
    """Raised when the lab daemon cannot be reached, started or stopped, with the next step in the message."""


def default_state_dir() -> Path:
    """Return $XDG_STATE_HOME/mesh-doctor/lab, or ~/.local/state/mesh-doctor/lab."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "mesh-doctor" / "lab"


# --- the command side ----------------------------------------------------------


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """Return the saved state of the lab in `state_dir`, or None when no lab was started there."""
    path = state_dir / STATE_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ControlError(f"{path} is not valid JSON ({error}); run `mesh-doctor lab down` to clean up") from error


def pid_alive(pid: int) -> bool:
    """Return whether process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def start_daemon(state_dir: Path, timeout: float = START_TIMEOUT_S, access_log_format: str = "text",
                 envoy: str | None = None) -> dict[str, Any]:
    """Start the lab daemon in `state_dir` and wait until its mesh is ready; return its state.

    `access_log_format` is "text" (Istio's default) or "json" for both
    sidecars; `envoy` is the Envoy binary (default: `envoy` on PATH).
    """
    state = read_state(state_dir)
    if state is not None and pid_alive(int(state.get("daemon_pid", 0))):
        raise ControlError(f"a lab is already running in {state_dir} (daemon pid {state['daemon_pid']}); "
                           "stop it with `mesh-doctor lab down` or pass another --state-dir")
    if state is not None:
        leftovers = stop_leftovers(state)
        if leftovers:
            logger.warning("killed processes of an earlier lab that were still running: %s", leftovers)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_NAME).unlink(missing_ok=True)
    (state_dir / SOCKET_NAME).unlink(missing_ok=True)

    log_path = state_dir / LOG_NAME
    with open(log_path, "ab") as log:
        # The daemon is Mesh Doctor itself, not an external tool, so it starts
        # here rather than through the runner. Its own session lets it outlive
        # this command.
        daemon = subprocess.Popen(
            [sys.executable, "-m", "doctor.lab.control", "--state-dir", str(state_dir),
             "--access-log-format", access_log_format, *(["--envoy", envoy] if envoy else [])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state is not None and state.get("error"):
            daemon.wait(timeout=STOP_TIMEOUT_S)
            raise ControlError(f"the lab did not start: {state['error']}")
        if state is not None and state.get("ready"):
            return state
        if daemon.poll() is not None:
            raise ControlError(f"the lab daemon exited with status {daemon.returncode} at start-up; "
                               f"see {log_path}:\n{_tail(log_path)}")
        time.sleep(0.1)
    daemon.kill()
    daemon.wait(timeout=STOP_TIMEOUT_S)
    raise ControlError(f"the lab was not ready within {timeout:g} s; see {log_path}:\n{_tail(log_path)}")


def request(state_dir: Path, message: dict[str, Any], timeout: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
    """Send one request to the running lab daemon and return its reply; raises ControlError."""
    state = read_state(state_dir)
    if state is None or not pid_alive(int(state.get("daemon_pid", 0))):
        raise ControlError(f"no lab is running in {state_dir}; start one with `mesh-doctor lab up`")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(state_dir / SOCKET_NAME))
            sock.sendall(json.dumps(message).encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            data = b"".join(iter(lambda: sock.recv(65536), b""))
        except OSError as error:
            raise ControlError(f"the lab daemon in {state_dir} did not respond ({error}); "
                               f"see {state_dir / LOG_NAME}") from error
    try:
        reply = json.loads(data)
    except ValueError as error:
        raise ControlError(f"the lab daemon sent an invalid reply: {data[:200]!r}") from error
    if not reply.get("ok"):
        raise ControlError(reply.get("error") or "the lab daemon failed without saying why")
    return reply


def stop_daemon(state_dir: Path) -> list[int]:
    """Stop the lab in `state_dir`, make sure none of its processes is left, and return their pids.

    Raises ControlError naming any pid that survived SIGKILL.
    """
    state = read_state(state_dir)
    if state is None:
        raise ControlError(f"no lab is running in {state_dir}")
    daemon_pid = int(state.get("daemon_pid", 0))
    if pid_alive(daemon_pid):
        try:
            request(state_dir, {"op": "down"}, timeout=STOP_TIMEOUT_S)
        except ControlError as error:
            logger.warning("the lab daemon did not stop on request (%s); sending SIGTERM", error)
            _signal(daemon_pid, signal.SIGTERM)
        _wait_gone([daemon_pid], STOP_TIMEOUT_S)
    state = read_state(state_dir) or state
    leftovers = stop_leftovers(state)
    # A process that was exiting when the leftovers were checked has no
    # command line left to recognise; give it the same time to end.
    _wait_gone(_owned_pids(state), STOP_TIMEOUT_S)
    survivors = [pid for pid in _owned_pids(state) if pid_alive(pid)]
    if survivors:
        raise ControlError(f"lab processes {survivors} are still running after SIGKILL; check them with `ps`")
    if leftovers:
        logger.warning("killed lab processes that outlived the daemon: %s", leftovers)
    (state_dir / SOCKET_NAME).unlink(missing_ok=True)
    (state_dir / STATE_NAME).unlink(missing_ok=True)
    return _owned_pids(state)


def stop_leftovers(state: dict[str, Any]) -> list[int]:
    """SIGKILL every process of `state` that still runs and is still the program the lab started."""
    killed = []
    for pid in _owned_pids(state):
        if pid_alive(pid) and _is_lab_process(pid):
            _signal(pid, signal.SIGKILL)
            killed.append(pid)
    _wait_gone(killed, STOP_TIMEOUT_S)
    return killed


def _owned_pids(state: dict[str, Any]) -> list[int]:
    pids = [int(state.get("daemon_pid", 0)), *(int(pid) for pid in state.get("all_pids", []))]
    return [pid for pid in pids if pid > 0]


def _is_lab_process(pid: int) -> bool:
    """Return whether `pid` runs Envoy, tcpdump or the lab daemon, so a reused pid is never killed."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "envoy" in command or "tcpdump" in command or "doctor.lab.control" in command


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
        time.sleep(0.05)


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- the daemon ----------------------------------------------------------------


@dataclass
class _Daemon:
    """The running lab and the daemon's state of it."""

    state_dir: Path
    lab: Any
    fault: Any = None
    stopping: bool = False
    remedies: Any = None
    fixes: list[str] | None = None

    def state(self, **extra: Any) -> dict[str, Any]:
        lab = self.lab
        state = {
            "daemon_pid": os.getpid(),
            "ready": True,
            "workdir": str(lab.workdir),
            "pids": lab.pids,
            "all_pids": lab.all_pids,
            "ports": lab.ports,
            "client_listener": lab.client.listener_port if lab.client else None,
            "server_listener": lab.server.listener_port if lab.server else None,
            "fault": self.fault.name if self.fault is not None else None,
            "fixes": list(self.fixes or []),
        }
        state.update(extra)
        return state

    def save(self) -> None:
        _write_state(self.state_dir, self.state())

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        from doctor.bundle import BundleError, write_bundle
        from doctor.lab import faults
        from doctor.lab.mesh import LabError
        from doctor.lab.remedies import Remedies

        if self.remedies is None:
            self.remedies = Remedies(self.lab)
        op = message.get("op")
        try:
            if op == "status":
                return {"ok": True, "state": self.state()}
            if op == "inject":
                fault = faults.fault_named(str(message.get("fault")))
                faults.inject(self.lab, fault)
                self.fault = fault
                self.remedies = Remedies(self.lab)
                self.fixes = []
                self.save()
                return {"ok": True, "state": self.state()}
            if op == "capture":
                target = Path(str(message["dir"]))
                scratch = self.lab.workdir / "capture"
                scratch.mkdir(exist_ok=True)
                captured = faults.capture(self.lab, self.fault, scratch)
                self.save()
                from doctor.lab.sessions import RUNNING_LAB_MARK

                description = (f"Mesh lab fault {self.fault.name}: {self.fault.title}" if self.fault
                               else "Mesh lab without a fault: healthy traffic") + RUNNING_LAB_MARK
                bundle = write_bundle(target, captured.observations, captured.files, description=description)
                return {"ok": True, "bundle": str(bundle), "state": self.state()}
            if op == "fix":
                change = self.remedies.run(
                    str(message.get("remedy")), dry_run=bool(message.get("dry_run")),
                    rollback=bool(message.get("rollback")), principal=message.get("principal"))
                if change.applied:
                    self.fixes = [*(self.fixes or []), change.remedy]
                    self.save()
                return {"ok": True, "applied": change.applied, "report": change.text(), "state": self.state()}
            if op == "probe":
                result = self.remedies.probe(str(message.get("probe")))
                return {"ok": True, "passed": result.passed, "report": result.text}
            if op == "down":
                self.stopping = True
                return {"ok": True}
            return {"ok": False, "error": f"unknown request {op!r}"}
        except KeyError as error:
            return {"ok": False, "error": str(error.args[0]) if error.args else str(error)}
        except (LabError, BundleError, OSError) as error:
            logger.exception("request %s failed", op)
            self.save()
            return {"ok": False, "error": str(error)}


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    temporary = state_dir / (STATE_NAME + ".tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    temporary.replace(state_dir / STATE_NAME)


def serve(state_dir: Path, access_log_format: str = "text", envoy: str | None = None) -> int:
    """Run the lab daemon in `state_dir` until `down` or SIGTERM; return the exit status."""
    from doctor.lab.mesh import LabError, MeshLab

    workdir = state_dir / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    lab = None
    try:
        lab = MeshLab(workdir, access_log_format=access_log_format, envoy=envoy)
        lab.start()
    except LabError as error:
        _write_state(state_dir, {"daemon_pid": os.getpid(), "ready": False, "error": str(error),
                                 "all_pids": lab.all_pids if lab is not None else []})
        return 1

    daemon = _Daemon(state_dir, lab)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            try:
                message = json.loads(self.rfile.readline() or b"{}")
            except ValueError as error:
                reply = {"ok": False, "error": f"invalid request: {error}"}
            else:
                reply = daemon.handle(message)
            self.wfile.write(json.dumps(reply).encode() + b"\n")

    def terminate(signum: int, frame: object) -> None:
        daemon.stopping = True

    signal.signal(signal.SIGTERM, terminate)
    socket_path = state_dir / SOCKET_NAME
    socket_path.unlink(missing_ok=True)
    try:
        with socketserver.UnixStreamServer(str(socket_path), Handler) as server:
            server.timeout = 0.5
            daemon.save()
            logger.info("lab ready: %s", daemon.state())
            while not daemon.stopping:
                server.handle_request()
    finally:
        lab.stop()
        _write_state(state_dir, daemon.state(ready=False, stopped=True))
        socket_path.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m doctor.lab.control",
                                     description="Run the mesh lab daemon (started by `mesh-doctor lab up`).")
    parser.add_argument("--state-dir", type=Path, required=True, help="folder for the state, socket and logs")
    parser.add_argument("--access-log-format", choices=("text", "json"), default="text",
                        help="access log format of both sidecars (default: text)")
    parser.add_argument("--envoy", help="path of the Envoy binary (default: envoy on PATH)")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("sh").setLevel(logging.WARNING)
    return serve(options.state_dir, options.access_log_format, options.envoy)


if __name__ == "__main__":
    raise SystemExit(main())
