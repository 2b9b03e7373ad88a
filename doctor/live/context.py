"""The state every live probe run shares: the engineer's options, the command runner and the API client.

`LiveOptions` follows kubectl's conventions. The kubeconfig comes from
`--kubeconfig`, else `KUBECONFIG`, else ~/.kube/config. `--context` picks a
context, `-n` the namespaces, `-A` all namespaces and `-l` a label selector.
`ProbeContext` builds one kubernetes `ApiClient` lazily (a probe that never
talks to the API does not need a readable kubeconfig) and shares it between
the probe threads.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from doctor.live import DEFAULT_CONCURRENCY, DEFAULT_LOG_SINCE, DEFAULT_PROBE_TIMEOUT_S
from doctor.runner import Runner

logger = logging.getLogger(__name__)


class KubeconfigError(RuntimeError):
    """Raised when the kubeconfig cannot be loaded; the message names the file and the fix."""


@dataclass(frozen=True)
class LiveOptions:
    """The engineer's scope and limits for one live collection."""

    kubeconfig: str | None = None
    context: str | None = None
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    selector: str = ""
    symptom: str | None = None
    source_workload: str | None = None
    destination_service: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    probe_timeout_s: float = DEFAULT_PROBE_TIMEOUT_S
    log_since: str = DEFAULT_LOG_SINCE
    allow_capture: bool = False
    max_pods: int = 10
    # Bounds of a packet capture: seconds, packets, and bytes kept of each packet.
    capture_image: str = "docker.io/nicolaka/netshoot:v0.13"
    capture_seconds: int = 10
    capture_packets: int = 200
    capture_snaplen: int = 128

    def kubeconfig_path(self) -> str:
        """Return the kubeconfig path (or KUBECONFIG's list of paths) kubectl would read."""
        if self.kubeconfig:
            return self.kubeconfig
        return os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


CaptureConfirm = Callable[[str], bool]


@dataclass
class ProbeContext:
    """Shared state of one live collection: options, runner and a lazily built API client."""

    options: LiveOptions
    runner: Runner
    # Asked before an intrusive probe runs; receives a description of what it will do.
    confirm_capture: CaptureConfirm = field(default=lambda description: False)
    # Responses shared between probes (such as API discovery), filled under `memo_lock`.
    memo: dict[str, Any] = field(default_factory=dict)
    memo_lock: threading.Lock = field(default_factory=threading.Lock)
    _client: Any = None
    _client_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, options: LiveOptions, *, search_path: Sequence[str] | None = None,
              confirm_capture: CaptureConfirm | None = None) -> "ProbeContext":
        runner = Runner(kubeconfig=options.kubeconfig_path(), search_path=search_path,
                        default_timeout_s=options.probe_timeout_s)
        context = cls(options=options, runner=runner)
        if confirm_capture is not None:
            context.confirm_capture = confirm_capture
        return context

    def kubectl(self, *args: str) -> list[str]:
        """Return a kubectl argv with the context and request timeout of these options."""
        argv = ["kubectl"]
        if self.options.context:
            argv += ["--context", self.options.context]
        argv.append(f"--request-timeout={max(1, int(self.options.probe_timeout_s))}s")
        return argv + list(args)

    def api_client(self) -> Any:
        """Return the shared kubernetes ApiClient; raises KubeconfigError when it cannot be built."""
        with self._lock:
            if self._client is not None:
                return self._client
            if self._client_error is not None:
                raise KubeconfigError(self._client_error)
            try:
                self._client = _new_api_client(self.options)
            except KubeconfigError as error:
                self._client_error = str(error)
                raise
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _new_api_client(options: LiveOptions) -> Any:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = options.kubeconfig_path()
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=path, context=options.context,
                                client_configuration=configuration, persist_config=False)
    except (ConfigException, OSError, ValueError, TypeError) as error:
        raise KubeconfigError(f"cannot load the kubeconfig {path}"
                              f"{f' (context {options.context})' if options.context else ''}: {error}; "
                              "pass --kubeconfig or set KUBECONFIG, and --context") from error
    # One pooled connection per probe thread; no retries, so the probe timeout bounds each call.
    configuration.connection_pool_maxsize = max(options.concurrency, 1)
    configuration.retries = False
    return client.ApiClient(configuration)
