"""The command runner with real programs: statuses, timeouts, output cap, environment, argv safety."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from doctor.model import ProbeStatus
from doctor.runner import MutatingCommandError, Runner, is_mutating

UNREACHABLE = Path(__file__).resolve().parent / "data" / "recorded" / "kubectl-unreachable"


@pytest.fixture
def runner() -> Runner:
    return Runner()


def test_true_is_ok(runner):
    observation = runner.run(["true"], probe_id="test.true", timeout=10)

    assert observation.status is ProbeStatus.OK
    assert observation.exit_status == 0
    assert observation.argv == ("true",)
    assert observation.probe_id == "test.true"
    assert observation.duration_s >= 0


def test_false_is_failed(runner):
    observation = runner.run(["false"], probe_id="test.false", timeout=10)

    assert observation.status is ProbeStatus.FAILED
    assert observation.exit_status == 1
    assert observation.reason == "exited with status 1"


def test_stderr_becomes_reason_of_failure(runner):
    observation = runner.run(["ls", "/nonexistent-mesh-doctor-path"], probe_id="test.ls", timeout=10)

    assert observation.status is ProbeStatus.FAILED
    assert observation.exit_status == 2
    assert "No such file or directory" in observation.reason
    assert observation.output == ""


@pytest.mark.parametrize("name, line", [
    ("connection-refused.stderr", "The connection to the server 127.0.0.1:1 was refused"),
    ("request-timeout.stderr", "Unable to connect to the server: context deadline exceeded"),
])
def test_unreachable_api_server_is_unavailable(runner, name, line):
    # Replays kubectl's recorded stderr and exit status 1 through a real process.
    script = f"import sys; sys.stderr.write(open({str(UNREACHABLE / name)!r}).read()); sys.exit(1)"

    observation = runner.run(["python3", "-c", script], probe_id="test.kubectl", timeout=10)

    assert observation.status is ProbeStatus.UNAVAILABLE
    assert observation.exit_status == 1
    assert observation.reason.startswith("cannot reach the Kubernetes API server: " + line)


def test_sleep_past_timeout_is_killed(runner):
    started = time.monotonic()
    observation = runner.run(["sleep", "30"], probe_id="test.sleep", timeout=0.5)
    elapsed = time.monotonic() - started

    assert observation.status is ProbeStatus.TIMED_OUT
    assert observation.exit_status is None
    assert "timed out after 0.5 s" in observation.reason
    assert elapsed < 10


def test_missing_binary_is_unavailable(runner):
    observation = runner.run(["mesh-doctor-no-such-tool", "--version"], probe_id="test.missing")

    assert observation.status is ProbeStatus.UNAVAILABLE
    assert observation.exit_status is None
    assert observation.reason.startswith("mesh-doctor-no-such-tool not found on PATH; install it")


def test_missing_istioctl_names_install(tmp_path):
    runner = Runner(search_path=[str(tmp_path)])

    observation = runner.run(["istioctl", "proxy-status"], probe_id="istioctl.proxy-status")

    assert observation.status is ProbeStatus.UNAVAILABLE
    assert observation.reason.startswith("istioctl not found on PATH; install it")
    assert "istio.io" in observation.reason


@pytest.mark.parametrize("payload", [
    "$(touch {marker})",
    "`touch {marker}`",
    "; touch {marker}",
    "| touch {marker}",
    "&& touch {marker}",
    "\ntouch {marker}\n",
])
def test_metacharacters_stay_literal(runner, tmp_path, payload):
    marker = tmp_path / "created-by-shell"
    argument = payload.format(marker=marker)

    observation = runner.run(["echo", argument], probe_id="test.echo", timeout=10)

    assert observation.status is ProbeStatus.OK
    assert observation.output == argument + "\n"
    assert not marker.exists()


def test_metacharacters_in_program_name(runner, tmp_path):
    marker = tmp_path / "created-by-shell"

    observation = runner.run([f"$(touch {marker})"], probe_id="test.name", timeout=10)

    assert observation.status is ProbeStatus.UNAVAILABLE
    assert not marker.exists()


def test_metacharacters_in_pod_name_for_kubectl(tmp_path, monkeypatch):
    marker = tmp_path / "created-by-shell"
    monkeypatch.setenv("HOME", str(tmp_path))
    runner = Runner(kubeconfig=tmp_path / "missing-kubeconfig")
    if runner.which("kubectl") is None:
        pytest.skip("kubectl is not installed")

    runner.run(["kubectl", "logs", f"pod-$(touch {marker})", "-c", "istio-proxy"],
               probe_id="kubectl.logs", timeout=20)

    assert not marker.exists()


def test_stdin_is_closed(runner):
    observation = runner.run(["cat"], probe_id="test.cat", timeout=5)

    assert observation.status is ProbeStatus.OK
    assert observation.output == ""


def test_output_over_cap_is_truncated(runner):
    observation = runner.run(["seq", "1", "100000"], probe_id="test.seq", timeout=10, output_cap_bytes=1000)

    kept, _, note = observation.output.rpartition("\n[mesh-doctor: output truncated here")
    assert observation.status is ProbeStatus.OK
    assert len(kept.encode()) == 1000
    assert kept.startswith("1\n2\n3\n")
    assert "kept the first 1000 of 588895 bytes" in note
    assert "output truncated to the first 1000 of 588895 bytes" in observation.reason


def test_output_under_cap_is_whole(runner):
    observation = runner.run(["seq", "1", "1000"], probe_id="test.seq", timeout=10)

    assert observation.output.splitlines() == [str(n) for n in range(1, 1001)]
    assert "truncated" not in observation.reason


def test_environment_is_minimal(tmp_path, monkeypatch):
    monkeypatch.setenv("MESH_DOCTOR_TEST_SECRET", "do-not-pass")
    monkeypatch.setenv("KUBECONFIG", "/from/the/caller")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    runner = Runner()

    observation = runner.run(["env"], probe_id="test.env", timeout=10)

    variables = dict(line.split("=", 1) for line in observation.output.splitlines())
    assert set(variables) <= {"PATH", "LANG", "LC_ALL", "HOME", "PWD"}
    assert variables["LANG"] == "C"
    assert variables["LC_ALL"] == "C"
    assert set(variables["PATH"].split(":")) <= {os.path.dirname(shutil.which("env")), "/usr/local/bin", "/usr/bin", "/bin"}
    assert "KUBECONFIG" not in variables
    assert "MESH_DOCTOR_TEST_SECRET" not in variables
    assert "HTTPS_PROXY" not in variables


def test_kubeconfig_passed_when_given(tmp_path):
    runner = Runner(kubeconfig=tmp_path / "config")

    observation = runner.run(["env"], probe_id="test.env", timeout=10)

    assert f"KUBECONFIG={tmp_path / 'config'}" in observation.output.splitlines()


def test_kubeconfig_from_caller_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))

    observation = Runner.from_environment().run(["env"], probe_id="test.env", timeout=10)

    assert f"KUBECONFIG={tmp_path / 'config'}" in observation.output.splitlines()


def test_path_starts_with_program_folder(runner):
    observation = runner.run(["env"], probe_id="test.env", timeout=10)

    path = dict(line.split("=", 1) for line in observation.output.splitlines())["PATH"]
    env_folder = os.path.dirname(shutil.which("env"))
    assert path.split(":")[0] == env_folder
    assert "/usr/bin" in path.split(":")


def test_secrets_in_argv_are_masked(runner):
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLWJ5dGVz"

    observation = runner.run(["echo", f"Authorization: Bearer {token}"], probe_id="test.echo", timeout=10)

    assert observation.argv[1] == "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.<signature masked>"
    assert "c2lnbmF0dXJlLWJ5dGVz" not in " ".join(observation.argv)


def test_sh_log_lines_mask_secrets(runner, caplog):
    caplog.set_level("DEBUG")

    runner.run(["echo", "Authorization: Bearer opaque-secret-value"], probe_id="test.echo", timeout=10)

    assert "opaque-secret-value" not in caplog.text
    assert "Bearer <masked>" in caplog.text


def test_mutating_command_is_rejected(runner, tmp_path):
    marker = tmp_path / "touched"

    with pytest.raises(MutatingCommandError, match="allow_mutation=True"):
        runner.run(["kubectl", "delete", "pod", "httpbin-1"], probe_id="test.delete")
    with pytest.raises(MutatingCommandError):
        runner.run(["curl", "-X", "POST", f"http://127.0.0.1:1/quitquitquit?{marker}"], probe_id="test.post")


def test_mutating_command_runs_when_allowed(runner):
    observation = runner.run(
        ["curl", "--silent", "--show-error", "--noproxy", "*", "--max-time", "5", "-X", "POST",
         "http://127.0.0.1:1/healthcheck/fail"],
        probe_id="test.post", timeout=10, allow_mutation=True)

    assert observation.status is ProbeStatus.FAILED
    assert observation.exit_status == 7
    assert "Failed to connect to 127.0.0.1 port 1" in observation.reason


@pytest.mark.parametrize("timeout", [0, -1])
def test_unbounded_timeout_is_rejected(runner, timeout):
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        runner.run(["sleep", "30"], probe_id="test.sleep", timeout=timeout)


def test_empty_argv_is_rejected(runner):
    with pytest.raises(ValueError, match="empty command"):
        runner.run([], probe_id="test.empty")


class _ForbiddingApiServer(BaseHTTPRequestHandler):
    """Answers kubectl's discovery, then 403 for everything else, as an API server with RBAC would."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches on
        path = self.path.split("?", 1)[0]
        status, body = 200, None
        if path == "/version":
            body = {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}
        elif path == "/api":
            body = {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}
        elif path == "/apis":
            body = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
        elif path == "/api/v1":
            body = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]}]}
        else:
            status = 403
            body = {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": 'pods is forbidden: User "system:serviceaccount:default:doctor" cannot list '
                           'resource "pods" in API group "" in the namespace "default"',
                "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403,
            }
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


@pytest.fixture
def forbidding_kubeconfig(tmp_path, monkeypatch) -> Path:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForbiddingApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HOME", str(tmp_path))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: lab, cluster: {{server: 'http://127.0.0.1:{server.server_address[1]}'}}}}]\n"
        "users: [{name: doctor, user: {token: lab-token}}]\n"
        "contexts: [{name: lab, context: {cluster: lab, user: doctor, namespace: default}}]\n"
        "current-context: lab\n")
    yield kubeconfig
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_kubectl_forbidden_is_forbidden(forbidding_kubeconfig):
    runner = Runner(kubeconfig=forbidding_kubeconfig)
    if runner.which("kubectl") is None:
        pytest.skip("kubectl is not installed")

    observation = runner.run(["kubectl", "get", "pods", "-n", "default", "-o", "json"],
                             probe_id="kubectl.get-pods", timeout=30)

    assert observation.status is ProbeStatus.FORBIDDEN
    assert observation.exit_status == 1
    assert observation.reason.startswith("Error from server (Forbidden): pods is forbidden")


def test_background_process_stops(runner, tmp_path):
    process = runner.start(["sleep", "60"], name="test sleeper", log_path=tmp_path / "sleep.log")
    assert process.is_alive()

    process.stop(grace_s=5)

    assert not process.is_alive()
    assert process.exit_code() == -15
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


def test_background_missing_program(runner, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found on PATH"):
        runner.start(["mesh-doctor-no-such-daemon"], name="missing", log_path=tmp_path / "log")


@pytest.mark.parametrize("argv", [
    ["kubectl", "apply", "-f", "policy.yaml"],
    ["kubectl", "-n", "default", "delete", "pod", "httpbin-1"],
    ["kubectl", "--context=prod", "patch", "deploy", "httpbin", "-p", "{}"],
    ["kubectl", "create", "secret", "generic", "x"],
    ["kubectl", "replace", "-f", "x.yaml"],
    ["kubectl", "edit", "deploy", "httpbin"],
    ["kubectl", "scale", "deploy", "httpbin", "--replicas=0"],
    ["kubectl", "label", "ns", "default", "istio-injection=enabled"],
    ["kubectl", "annotate", "pod", "x", "a=b"],
    ["kubectl", "rollout", "restart", "deploy/httpbin"],
    ["kubectl", "rollout", "undo", "deploy/httpbin"],
    ["kubectl", "set", "image", "deploy/httpbin", "httpbin=x"],
    ["kubectl", "cordon", "node-1"],
    ["kubectl", "drain", "node-1"],
    ["kubectl", "taint", "nodes", "node-1", "key=value:NoSchedule"],
    ["kubectl", "exec", "httpbin-1", "-c", "istio-proxy", "--", "curl", "-X", "POST", "localhost:15000/logging"],
    ["kubectl", "exec", "httpbin-1", "-c", "istio-proxy", "--", "pilot-agent", "request", "POST", "quitquitquit"],
    ["kubectl", "exec", "-it", "httpbin-1", "--", "sh"],
    ["kubectl", "debug", "httpbin-1", "--image=busybox"],
    ["kubectl", "config", "use-context", "prod"],
    ["kubectl", "some-plugin-verb"],
    ["/usr/local/bin/kubectl", "delete", "ns", "default"],
    ["istioctl", "install", "-y"],
    ["istioctl", "upgrade"],
    ["istioctl", "uninstall", "--purge"],
    ["istioctl", "x", "waypoint", "apply", "-n", "default"],
    ["istioctl", "waypoint", "delete", "waypoint"],
    ["istioctl", "tag", "set", "prod", "--revision", "1-24"],
    ["istioctl", "proxy-config", "log", "httpbin-1", "--level", "debug"],
    ["istioctl", "manifest", "install"],
    ["curl", "-X", "POST", "http://127.0.0.1:15000/logging?level=debug"],
    ["curl", "-XPOST", "http://127.0.0.1:15000/reset_counters"],
    ["curl", "--data", "x", "http://127.0.0.1:8080/"],
    ["curl", "http://127.0.0.1:15000/quitquitquit"],
    ["pilot-agent", "request", "POST", "drain_listeners"],
])
def test_is_mutating_true(argv):
    assert is_mutating(argv)


@pytest.mark.parametrize("argv", [
    ["kubectl", "get", "pods", "-n", "default", "-o", "json"],
    ["kubectl", "-n", "istio-system", "logs", "istiod-1"],
    ["kubectl", "--namespace", "apply", "describe", "pod", "x"],
    ["kubectl", "describe", "pod", "httpbin-1"],
    ["kubectl", "top", "pod"],
    ["kubectl", "get", "events", "--field-selector", "reason=Killing"],
    ["kubectl", "rollout", "status", "deploy/httpbin"],
    ["kubectl", "rollout", "history", "deploy/httpbin"],
    ["kubectl", "auth", "can-i", "list", "pods"],
    ["kubectl", "config", "current-context"],
    ["kubectl", "apply", "-f", "policy.yaml", "--dry-run=server"],
    ["kubectl", "delete", "pod", "x", "--dry-run=client"],
    ["kubectl", "diff", "-f", "policy.yaml"],
    ["kubectl", "exec", "httpbin-1", "-c", "istio-proxy", "--", "pilot-agent", "request", "GET", "stats"],
    ["kubectl", "exec", "httpbin-1", "-n", "default", "-c", "istio-proxy", "--",
     "pilot-agent", "request", "GET", "config_dump?include_eds"],
    ["istioctl", "proxy-status"],
    ["istioctl", "pc", "cluster", "httpbin-1", "-o", "json"],
    ["istioctl", "proxy-config", "secret", "httpbin-1"],
    ["istioctl", "analyze", "-n", "default"],
    ["istioctl", "x", "describe", "pod", "httpbin-1"],
    ["istioctl", "x", "precheck"],
    ["istioctl", "version"],
    ["istioctl", "waypoint", "list"],
    ["curl", "http://127.0.0.1:15000/stats"],
    ["curl", "-s", "--max-time", "5", "http://127.0.0.1:15000/config_dump?include_eds"],
    ["openssl", "s_client", "-connect", "127.0.0.1:15006"],
    ["pilot-agent", "request", "GET", "certs"],
    ["envoy", "--version"],
    [],
])
def test_is_mutating_false(argv):
    assert not is_mutating(argv)


def test_mask_argv_hides_option_values():
    from doctor.runner import mask_argv

    masked = mask_argv(["kubectl", "--token", "s3cr3t-value", "get", "pods"])

    assert "s3cr3t-value" not in masked
    assert masked[:2] == ("kubectl", "--token")
    assert masked[3:] == ("get", "pods")
