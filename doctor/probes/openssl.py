"""TLS handshake probe: `openssl s_client` against a loopback port.

It shows what a peer presents (the chain with -showcerts), whether it
verifies against a CA file, and which handshake error stops it. stdin is
an empty pipe, so s_client ends right after the handshake instead of waiting
for input, and the runner's timeout bounds a peer that never replies.
"""

from __future__ import annotations

import logging
import os

from doctor.model import Observation
from doctor.probes.envoy_admin import check_loopback
from doctor.runner import Runner

logger = logging.getLogger(__name__)

PROBE_ID = "openssl.s-client"
DEFAULT_TIMEOUT_S = 10.0


def s_client_argv(
    port: int,
    *,
    host: str = "127.0.0.1",
    servername: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    cert_file: str | os.PathLike[str] | None = None,
    key_file: str | os.PathLike[str] | None = None,
    alpn: str | None = None,
    verify_return_error: bool = False,
    tls_version: str | None = None,
) -> list[str]:
    """Build the s_client argv; raises ValueError for a host that is not loopback.

    `tls_version` "1.2" or "1.3" pins the protocol. Pin 1.2 to see a server
    reject the client certificate: under TLS 1.3 the client finishes its side
    of the handshake first, so s_client can exit before the server's alert.
    """
    check_loopback(host)
    if tls_version not in (None, "1.2", "1.3"):
        raise ValueError(f"tls_version {tls_version!r} is invalid; use '1.2', '1.3' or None")
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate needs its key: pass both cert_file and key_file, or neither")

    connect = f"[{host.strip('[]')}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"
    argv = ["openssl", "s_client", "-connect", connect, "-showcerts"]
    if servername:
        argv += ["-servername", servername]
    if ca_file is not None:
        argv += ["-CAfile", os.fspath(ca_file)]
    if cert_file is not None and key_file is not None:
        argv += ["-cert", os.fspath(cert_file), "-key", os.fspath(key_file)]
    if alpn:
        argv += ["-alpn", alpn]
    if verify_return_error:
        argv.append("-verify_return_error")
    if tls_version is not None:
        argv.append("-tls" + tls_version.replace(".", "_"))
    return argv


def s_client(
    port: int,
    *,
    host: str = "127.0.0.1",
    servername: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    cert_file: str | os.PathLike[str] | None = None,
    key_file: str | os.PathLike[str] | None = None,
    alpn: str | None = None,
    verify_return_error: bool = False,
    tls_version: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    target: str = "",
    runner: Runner | None = None,
) -> Observation:
    """Run s_client and return its observation, stderr merged into the output.

    s_client writes the chain and the session to stdout and the verify and
    handshake errors to stderr; merged, they read in the order they happened.
    """
    argv = s_client_argv(
        port, host=host, servername=servername, ca_file=ca_file, cert_file=cert_file,
        key_file=key_file, alpn=alpn, verify_return_error=verify_return_error, tls_version=tls_version)
    runner = runner or Runner.from_environment()
    return runner.run(argv, probe_id=PROBE_ID, timeout=timeout, merge_stderr=True,
                      target=target or f"{host}:{port}")
