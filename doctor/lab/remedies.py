"""The lab's remediations and the probes that verify them, run by the lab daemon.

Each remediation changes the running `MeshLab` the way an engineer fixes
the incident in a cluster. `rotate-cert` issues the server workload a new
certificate from the mesh CA. `policy` adds a principal to the server's
ALLOW AuthorizationPolicy. `restart-app` starts the upstream application
again on its port. A sidecar takes a new certificate or policy by
restarting (the lab's Envoys have no control plane to push it), so the
report mentions the restart. Every remediation has a dry run, which describes the
change without making it, and a rollback, which restores what the last
applied remediation of that name replaced.

The probes send what a playbook's verify step needs: one request through
both sidecars with a valid token, or a TLS handshake from the client's
workload certificate to the server sidecar.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from cryptography import x509

from doctor.lab.mesh import LabError, LabSettings, MeshLab
from doctor.probes import openssl

logger = logging.getLogger(__name__)

REMEDIES = ("rotate-cert", "policy", "restart-app")
PROBES = ("request", "handshake")
_STATUS_LINE = re.compile(r"^< (HTTP/[\d.]+ (\d{3})\b.*)$", re.MULTILINE)
_PRINCIPAL = re.compile(r"^[A-Za-z0-9.-]+/ns/[a-z0-9-]+/sa/[a-z0-9-]+$")


@dataclass(frozen=True)
class Change:
    """The report of a remediation: one line per fact it changed, or would change in a dry run."""

    remedy: str
    lines: tuple[str, ...]
    applied: bool

    def text(self) -> str:
        head = f"{self.remedy}: " + ("changed" if self.applied else "dry run, nothing changed")
        return "\n".join([head, *(f"  {line}" for line in self.lines)])


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of a verify probe: whether it passed, and the lines that show it."""

    passed: bool
    text: str


@dataclass
class Remedies:
    """The lab's remediations, with the settings each applied one replaced, for its rollback."""

    lab: MeshLab
    _undo: dict[str, LabSettings | bool] = field(default_factory=dict)

    def run(self, remedy: str, *, dry_run: bool = False, rollback: bool = False,
            principal: str | None = None) -> Change:
        """Run `remedy`; raises LabError naming the remedy and what to do when it cannot run."""
        if remedy not in REMEDIES:
            raise LabError(f"unknown remediation {remedy!r}; use one of {', '.join(REMEDIES)}")
        if rollback:
            return self._rollback(remedy, dry_run)
        if remedy == "rotate-cert":
            return self._rotate_cert(dry_run)
        if remedy == "policy":
            return self._allow_principal(principal, dry_run)
        return self._restart_app(dry_run)

    # --- remediations ---

    def _rotate_cert(self, dry_run: bool) -> Change:
        before = _certificate_line(self.lab.workdir / "server-cert.pem")
        settings = replace(self.lab.settings, server_certificate="valid")
        if dry_run:
            return Change("rotate-cert", (f"server certificate now: {before}",
                                          "would issue a new server certificate from the mesh CA, valid for 24 h, "
                                          "and restart the sidecars to load it"), applied=False)

        previous = self.lab.settings
        self.lab.apply(settings)
        self._undo["rotate-cert"] = previous
        after = _certificate_line(self.lab.workdir / "server-cert.pem")
        return Change("rotate-cert", (f"server certificate before: {before}", f"server certificate after: {after}",
                                      "sidecars restarted to load it"), applied=True)

    def _allow_principal(self, principal: str | None, dry_run: bool) -> Change:
        if not principal:
            raise LabError("policy needs --allow-principal PRINCIPAL, such as cluster.local/ns/default/sa/sleep")
        principal = principal.removeprefix("spiffe://")
        if not _PRINCIPAL.match(principal):
            raise LabError(f"principal {principal!r} is not TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT")
        before = self.lab.settings.allowed_principals
        if principal in before:
            raise LabError(f"the ALLOW policy already names {principal}; nothing to change")
        after = (*before, principal)
        lines = (f"ALLOW policy principals before: {', '.join(before) or '(none)'}",
                 f"ALLOW policy principals after: {', '.join(after)}")
        if dry_run:
            return Change("policy", (*lines, "would restart the sidecars to load the policy"), applied=False)

        previous = self.lab.settings
        self.lab.apply(replace(previous, allowed_principals=after))
        self._undo["policy"] = previous
        return Change("policy", (*lines, "sidecars restarted to load the policy"), applied=True)

    def _restart_app(self, dry_run: bool) -> Change:
        app = self.lab.app
        if app.running:
            raise LabError(f"the upstream application already listens on 127.0.0.1:{app.port}; nothing to restart")
        if dry_run:
            return Change("restart-app", (f"upstream application: stopped (port {app.port})",
                                          f"would start it again on 127.0.0.1:{app.port}"), applied=False)

        app.requested_port = app.port or 0
        app.start()
        self.lab.app_stopped_at = None
        self._undo["restart-app"] = False
        return Change("restart-app", ("upstream application before: stopped",
                                      f"upstream application after: listening on 127.0.0.1:{app.port}"), applied=True)

    def _rollback(self, remedy: str, dry_run: bool) -> Change:
        if remedy not in self._undo:
            raise LabError(f"{remedy} has not been applied in this lab; there is nothing to roll back")
        previous = self._undo[remedy]
        if remedy == "restart-app":
            if dry_run:
                return Change("restart-app --rollback", ("would stop the upstream application again",),
                              applied=False)
            self.lab.stop_app()
            del self._undo[remedy]
            return Change("restart-app --rollback", ("upstream application stopped",), applied=True)

        assert isinstance(previous, LabSettings)
        lines = [f"{name}: {getattr(self.lab.settings, name)!r} -> {getattr(previous, name)!r}"
                 for name in LabSettings.__dataclass_fields__
                 if getattr(self.lab.settings, name) != getattr(previous, name)]
        if dry_run:
            return Change(f"{remedy} --rollback", (*lines, "would restart the sidecars with the settings before "
                                                   f"{remedy}"), applied=False)
        self.lab.apply(previous)
        del self._undo[remedy]
        return Change(f"{remedy} --rollback", (*lines, "sidecars restarted with the settings before the change"),
                      applied=True)

    # --- probes ---

    def probe(self, name: str) -> ProbeResult:
        """Run the verify probe `name` against the running lab."""
        if name == "request":
            return self._request()
        if name == "handshake":
            return self._handshake()
        raise LabError(f"unknown probe {name!r}; use one of {', '.join(PROBES)}")

    def _request(self) -> ProbeResult:
        observation = self.lab.request("/get", token=self.lab.valid_token())
        statuses = _STATUS_LINE.findall(observation.output)
        if not statuses:
            return ProbeResult(False, f"no HTTP response: {observation.reason or 'curl printed no status line'}")
        line, code = statuses[-1]
        # The code and reason without the "HTTP/1.1" prefix: the runner reads
        # "HTTP/1.1 403" as a refused probe, and this 403 is the finding itself.
        reason = line.split(" ", 1)[1].strip()
        return ProbeResult(code.startswith("2"), f"{code}\nresponse through both sidecars: {reason}")

    def _handshake(self) -> ProbeResult:
        server = self.lab.server
        if server is None:
            raise LabError("the server sidecar is not running")
        files = self.lab.tls_files
        observation = openssl.s_client(
            server.listener_port, servername=self.lab.service.sni, ca_file=files["root"],
            cert_file=files["cert"], key_file=files["key"], verify_return_error=True,
            runner=self.lab.runner, target="client workload -> server sidecar")
        verify = [line.strip() for line in observation.output.splitlines()
                  if "Verify return code" in line or "verify error" in line]
        if not verify:
            verify = [observation.reason or "openssl printed no verify result"]
        passed = observation.exit_status == 0 and any("Verify return code: 0 (ok)" in line for line in verify)
        return ProbeResult(passed, "\n".join(dict.fromkeys(verify)))


def _certificate_line(path) -> str:
    """Describe the PEM certificate at `path`: serial, validity and whether it has expired."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as error:
        return f"unreadable ({error})"
    not_after = certificate.not_valid_after_utc
    state = "EXPIRED" if not_after < datetime.now(timezone.utc) else "valid"
    return (f"serial {certificate.serial_number:x}, not after {not_after:%Y-%m-%dT%H:%M:%SZ} ({state})")
