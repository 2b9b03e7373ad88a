"""Two network namespaces joined by a veth pair, created for one lab run and always removed.

The namespaces are named after this process (`mdlab-PID-client`,
`mdlab-PID-server`), so two runs never collide, and deleting a namespace
deletes its end of the veth pair. Their addresses are link-local
(169.254.213.0/30) and exist only inside the two namespaces. Making them
needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); where `ip netns add` fails,
`NetnsPair.create` raises `NamespaceUnavailable` with ip's own message.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from doctor.model import Observation, ProbeStatus
from doctor.runner import BackgroundProcess, MutatingCommandError, Runner, is_mutating

logger = logging.getLogger(__name__)

CLIENT_ADDRESS = "169.254.213.1"
SERVER_ADDRESS = "169.254.213.2"
PREFIX_LENGTH = 30
NETWORK = "169.254.213.0"
IP_TIMEOUT_S = 10.0


class NamespaceUnavailable(RuntimeError):
    """Raised when this machine cannot make network namespaces; the message has the reason."""


class NetnsRunner(Runner):
    """A runner whose commands run inside one network namespace, through `ip netns exec`."""

    def __init__(self, namespace: str, base: Runner) -> None:
        super().__init__(kubeconfig=base.kubeconfig, search_path=base.search_path,
                         default_timeout_s=base.default_timeout_s, output_cap_bytes=base.output_cap_bytes)
        self.namespace = namespace

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        argv = [str(arg) for arg in argv]
        if is_mutating(argv):
            raise MutatingCommandError(f"{argv[0]} in namespace {self.namespace} would change state")
        program = self.which(argv[0]) or argv[0]
        return ["ip", "netns", "exec", self.namespace, program, *argv[1:]]

    def run(self, argv: Sequence[str], **options) -> Observation:  # type: ignore[override]
        return super().run(self._wrap(argv), **options)

    def start(self, argv: Sequence[str], *, name: str, log_path, env: Mapping[str, str] | None = None
              ) -> BackgroundProcess:
        return super().start(self._wrap(argv), name=name, log_path=log_path, env=env)


@dataclass
class NetnsPair:
    """The client and server namespaces, their veth ends and the namespaces created so far, for `remove`."""

    client: str
    server: str
    client_link: str
    server_link: str
    runner: Runner
    created_namespaces: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, runner: Runner, *, client_mtu: int, server_mtu: int, client_advmss: int | None = None,
               server_gso_max_segs: int | None = None) -> "NetnsPair":
        """Create both namespaces and the veth pair with the given MTUs; raises NamespaceUnavailable.

        `client_advmss` sets the MSS the client advertises on its route to the
        server, and `server_gso_max_segs` 1 makes the server's veth send
        every segment as its own packet instead of one GSO batch.
        """
        tag = str(os.getpid())
        pair = cls(client=f"mdlab-{tag}-client", server=f"mdlab-{tag}-server",
                   client_link=f"mdl{tag[-6:]}c", server_link=f"mdl{tag[-6:]}s", runner=runner)
        try:
            pair._ip("netns", "add", pair.client)
            pair.created_namespaces.append(pair.client)
            pair._ip("netns", "add", pair.server)
            pair.created_namespaces.append(pair.server)
            pair._ip("link", "add", pair.client_link, "type", "veth", "peer", "name", pair.server_link)
            pair._ip("link", "set", pair.client_link, "netns", pair.client)
            pair._ip("link", "set", pair.server_link, "netns", pair.server)
            pair._ip("-n", pair.client, "addr", "add", f"{CLIENT_ADDRESS}/{PREFIX_LENGTH}", "dev", pair.client_link)
            pair._ip("-n", pair.server, "addr", "add", f"{SERVER_ADDRESS}/{PREFIX_LENGTH}", "dev", pair.server_link)
            pair._ip("-n", pair.client, "link", "set", pair.client_link, "mtu", str(client_mtu), "up")
            pair._ip("-n", pair.server, "link", "set", pair.server_link, "mtu", str(server_mtu), "up")
            if server_gso_max_segs is not None:
                pair._ip("-n", pair.server, "link", "set", pair.server_link, "gso_max_segs", str(server_gso_max_segs))
            for namespace in (pair.client, pair.server):
                pair._ip("-n", namespace, "link", "set", "lo", "up")
            if client_advmss is not None:
                pair._ip("-n", pair.client, "route", "replace", f"{NETWORK}/{PREFIX_LENGTH}",
                         "dev", pair.client_link, "advmss", str(client_advmss))
        except NamespaceUnavailable:
            pair.remove()
            raise
        return pair

    def _ip(self, *args: str) -> None:
        observation = self.runner.run(["ip", *args], probe_id="lab.ip", timeout=IP_TIMEOUT_S, allow_mutation=True)
        if observation.status is not ProbeStatus.OK:
            raise NamespaceUnavailable(f"`ip {' '.join(args)}` failed: {observation.reason or observation.output}")

    def runner_in(self, namespace: str) -> NetnsRunner:
        return NetnsRunner(namespace, self.runner)

    def remove(self) -> None:
        """Delete the namespaces this pair created (and with them the veth pair); safe to call twice."""
        for namespace in reversed(self.created_namespaces):
            observation = self.runner.run(["ip", "netns", "delete", namespace], probe_id="lab.ip",
                                          timeout=IP_TIMEOUT_S, allow_mutation=True)
            if observation.status is not ProbeStatus.OK:
                logger.warning("could not delete network namespace %s: %s", namespace, observation.reason)
        self.created_namespaces.clear()

    def __enter__(self) -> "NetnsPair":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
