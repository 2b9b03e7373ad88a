"""A Kubernetes API replay server on 127.0.0.1 for the live-collection tests and demos.

It serves a recorded cluster over HTTPS with a certificate from its own CA:
discovery (`/version`, `/api`, `/apis` and one resource list per group
version), the objects of a `ReplayCluster` as get and list responses (with
label and field selectors), container logs, `pods/exec` through the
WebSocket protocol kubectl and the kubernetes client speak
(`v5.channel.k8s.io` and `v4.channel.k8s.io`), `SelfSubjectAccessReview`
for `kubectl auth can-i`, and the `ephemeralcontainers` subresource that
`kubectl debug` patches. Logs, exec output and the output of an ephemeral
container are recorded responses, looked up by pod, container and command.

Every request is appended to `requests` with its HTTP method, Kubernetes
verb, path and status code, so a test can prove that a scan sent no write.
`deny` makes chosen resources return 403 Forbidden (and `auth can-i` return
no), and `delay_s` holds every response back, to test slow API servers.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import http.server
import ipaddress
import json
import logging
import os
import socket
import ssl
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

logger = logging.getLogger(__name__)

BEARER_TOKEN = "replay-token"
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PROTOBUF_MAGIC = b"k8s\x00"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# Subresources whose "create" opens a stream (a connect request) and stores nothing.
CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})
# Resources whose "create" is a question to the authorizer and stores nothing.
REVIEW_RESOURCES = frozenset({"selfsubjectaccessreviews", "selfsubjectrulesreviews"})


# --- the recorded cluster --------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    """One API resource: its group, served versions, plural name and kind."""

    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("get", "list", "watch")


CORE_TYPES = (
    ResourceType("", ("v1",), "pods", "Pod", subresources=("log", "exec", "portforward", "ephemeralcontainers"),
                 short_names=("po",)),
    ResourceType("", ("v1",), "events", "Event", short_names=("ev",)),
    ResourceType("", ("v1",), "services", "Service", short_names=("svc",)),
    ResourceType("", ("v1",), "endpoints", "Endpoints", short_names=("ep",)),
    ResourceType("", ("v1",), "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    ResourceType("", ("v1",), "nodes", "Node", namespaced=False, short_names=("no",)),
)
# The versions Istio 1.22 and later serve for its security and networking CRDs.
ISTIO_TYPES = (
    ResourceType("security.istio.io", ("v1", "v1beta1"), "peerauthentications", "PeerAuthentication"),
    ResourceType("security.istio.io", ("v1", "v1beta1"), "authorizationpolicies", "AuthorizationPolicy"),
    ResourceType("security.istio.io", ("v1", "v1beta1"), "requestauthentications", "RequestAuthentication"),
    ResourceType("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "destinationrules", "DestinationRule"),
    ResourceType("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "virtualservices", "VirtualService"),
    ResourceType("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "sidecars", "Sidecar"),
    ResourceType("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "serviceentries", "ServiceEntry"),
    ResourceType("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "gateways", "Gateway"),
    ResourceType("networking.istio.io", ("v1alpha3",), "envoyfilters", "EnvoyFilter"),
)
AUTHORIZATION_TYPE = ResourceType("authorization.k8s.io", ("v1",), "selfsubjectaccessreviews",
                                  "SelfSubjectAccessReview", namespaced=False, verbs=("create",))


@dataclass
class ReplayCluster:
    """The recorded state a `ReplayServer` serves.

    `objects` maps (group, plural) to the objects of that resource. `logs`
    maps (namespace, pod, container) to the log text, and (namespace, pod,
    container, "previous") to the previous container's log. `exec` maps
    (namespace, pod, container, command...) to (stdout, exit code).
    `ephemeral_logs` maps an image to the log an ephemeral container of
    that image leaves behind (a packet capture's text output).
    """

    types: tuple[ResourceType, ...] = CORE_TYPES + ISTIO_TYPES
    objects: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    logs: dict[tuple[str, ...], str] = field(default_factory=dict)
    exec: dict[tuple[str, ...], tuple[str, int]] = field(default_factory=dict)
    ephemeral_logs: dict[str, str] = field(default_factory=dict)
    server_version: str = "v1.32.4"

    def add(self, obj: dict[str, Any]) -> None:
        """Add one object; its apiVersion and kind name the resource it belongs to."""
        group = obj["apiVersion"].rpartition("/")[0]
        if group == "" and obj["kind"] == "Pod":
            # The API server defaults an absent pod securityContext to {}, and kubectl debug 1.37
            # dereferences it, so recorded pods written without one get it here.
            obj.setdefault("spec", {}).setdefault("securityContext", {})
        for resource in self.types:
            if resource.group == group and resource.kind == obj["kind"]:
                self.objects.setdefault((group, resource.plural), []).append(obj)
                return
        raise ValueError(f"no resource type of kind {obj['kind']} in group {group!r}; add it to `types`")

    def resource(self, group: str, version: str, plural: str) -> ResourceType | None:
        for resource in self.types + (AUTHORIZATION_TYPE,):
            if resource.group == group and resource.plural == plural and version in resource.versions:
                return resource
        return None


# --- requests and faults ------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request the server handled: method, Kubernetes verb, path, query and status code."""

    method: str
    verb: str
    path: str
    query: str
    code: int
    body: str = ""

    @property
    def is_write(self) -> bool:
        """Whether the request changes stored state: connect requests and access reviews do not."""
        if self.verb not in WRITE_VERBS:
            return False
        api_path = parse_api_path(self.path)
        if api_path is None:
            return True
        if self.verb == "create" and (api_path.subresource in CONNECT_SUBRESOURCES
                                      or api_path.plural in REVIEW_RESOURCES):
            return False
        return True

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.verb} {self.method} {self.path}{query} -> {self.code}"


@dataclass(frozen=True)
class ApiPath:
    """A parsed resource path: /api/v1/namespaces/NS/pods/NAME/log and the like."""

    group: str
    version: str
    namespace: str | None
    plural: str
    name: str | None
    subresource: str | None


def parse_api_path(path: str) -> ApiPath | None:
    """Split a Kubernetes resource path into its parts; None for discovery and other paths."""
    parts = [unquote(part) for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None

    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return ApiPath(group, version, namespace, plural, name, subresource)


def kubernetes_verb(method: str, api_path: ApiPath | None, query: dict[str, list[str]]) -> str:
    """Return the verb the Kubernetes authorizer would see for this request."""
    if api_path is None:
        return "get" if method in ("GET", "HEAD") else method.lower()
    if method in ("GET", "HEAD"):
        if query.get("watch", ["false"])[0] in ("true", "1"):
            return "watch"
        return "get" if api_path.name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if api_path.name else "deletecollection"
    return method.lower()


@dataclass(frozen=True)
class Denial:
    """A resource (and optional subresource) that returns 403 Forbidden."""

    plural: str
    subresource: str | None = None
    group: str = ""

    def matches(self, group: str, plural: str, subresource: str | None) -> bool:
        return self.group == group and self.plural == plural and self.subresource == subresource


# --- the server -----------------------------------------------------------------------


class ReplayServer:
    """Serves a `ReplayCluster` on 127.0.0.1 over HTTPS; use as a context manager or call start and stop."""

    def __init__(self, cluster: ReplayCluster, *, delay_s: float = 0.0, deny: Iterable[Denial] = (),
                 port: int = 0, workdir: str | os.PathLike[str] | None = None) -> None:
        self.cluster = cluster
        self.delay_s = delay_s
        self.deny = list(deny)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._port = port
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="mesh-doctor-replay-"))
        self._httpd: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_pem = b""

    # lifecycle

    def start(self) -> "ReplayServer":
        ca_pem, cert_pem, key_pem = _make_certificates()
        self.ca_pem = ca_pem
        cert_path = self.workdir / "server.crt"
        key_path = self.workdir / "server.key"
        cert_path.write_bytes(cert_pem + ca_pem)
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)

        self._httpd = _TLSServer(("127.0.0.1", self._port), _handler_class(self), context)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="replay-api", daemon=True)
        self._thread.start()
        logger.info("replay API server listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "ReplayServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start the server first"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: str | os.PathLike[str] | None = None, *, namespace: str = "default",
                         context: str = "replay") -> Path:
        """Write a kubeconfig that trusts this server's CA and sends its bearer token."""
        target = Path(path) if path is not None else self.workdir / "kubeconfig"
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "replay", "cluster": {
                "server": self.url,
                "certificate-authority-data": base64.b64encode(self.ca_pem).decode()}}],
            "contexts": [{"name": context, "context": {"cluster": "replay", "namespace": namespace,
                                                       "user": "replay"}}],
            "users": [{"name": "replay", "user": {"token": BEARER_TOKEN}}],
        }
        target.write_text(json.dumps(config, indent=2))
        target.chmod(0o600)
        return target

    # request log

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def writes(self) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.is_write]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def is_denied(self, group: str, plural: str, subresource: str | None) -> bool:
        return any(denial.matches(group, plural, subresource) for denial in self.deny)


class _TLSServer(http.server.ThreadingHTTPServer):
    """Accepts plain connections and runs the TLS handshake in each request's thread."""

    daemon_threads = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of parallel probes, and
    # the kernel resends them only after a second.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext) -> None:
        self.ssl_context = context
        super().__init__(address, handler)

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            request.settimeout(30)
            request = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            logger.info("replay API server: TLS handshake with %s failed: %s", client_address, error)
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)


def _handler_class(server: ReplayServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(_ReplayHandler):
        replay = server

    return Handler


class _ReplayHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    replay: ReplayServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        logger.debug("replay API server: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    # dispatch

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        api_path = parse_api_path(split.path)
        verb = kubernetes_verb(method, api_path, query)
        body = self._read_body()
        if self.replay.delay_s:
            time.sleep(self.replay.delay_s)

        if self.headers.get("Authorization") != f"Bearer {BEARER_TOKEN}":
            code = self._status(401, "Unauthorized", "Unauthorized")
        elif api_path is None:
            code = self._discovery(split.path)
        else:
            code = self._resource(method, verb, api_path, query, body)
        self.replay.record(Request(method, verb, split.path, split.query, code, body.decode("utf-8", "replace")))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # responses

    def _send_json(self, code: int, payload: Any) -> int:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return code

    def _send_text(self, code: int, text: str) -> int:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return code

    def _status(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> int:
        payload = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": reason, "code": code}
        if details:
            payload["details"] = details
        return self._send_json(code, payload)

    def _forbidden(self, verb: str, api_path: ApiPath) -> int:
        resource = api_path.plural + (f"/{api_path.subresource}" if api_path.subresource else "")
        where = f' in the namespace "{api_path.namespace}"' if api_path.namespace else " at the cluster scope"
        group = api_path.group
        message = (f'{api_path.plural} is forbidden: User "system:serviceaccount:default:mesh-doctor" cannot '
                   f'{verb} resource "{resource}" in API group "{group}"{where}')
        return self._status(403, "Forbidden", message, {"kind": api_path.plural})

    def _not_found(self, api_path: ApiPath) -> int:
        message = f'{api_path.plural} "{api_path.name}" not found'
        return self._status(404, "NotFound", message, {"name": api_path.name, "kind": api_path.plural})

    # discovery

    def _discovery(self, path: str) -> int:
        cluster = self.replay.cluster
        if path == "/version":
            major, minor = cluster.server_version.lstrip("v").split(".")[:2]
            return self._send_json(200, {"major": major, "minor": minor, "gitVersion": cluster.server_version,
                                         "platform": "linux/amd64"})
        if path == "/api":
            return self._send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                         "serverAddressByClientCIDRs": [
                                             {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]})
        if path == "/apis":
            return self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                         "groups": _api_groups(cluster)})
        parts = [part for part in path.split("/") if part]
        if parts == ["api", "v1"]:
            return self._send_json(200, _resource_list(cluster, "", "v1"))
        if len(parts) == 3 and parts[0] == "apis":
            listing = _resource_list(cluster, parts[1], parts[2])
            if listing["resources"]:
                return self._send_json(200, listing)
        if len(parts) == 2 and parts[0] == "apis":
            for group in _api_groups(cluster):
                if group["name"] == parts[1]:
                    return self._send_json(200, {"kind": "APIGroup", "apiVersion": "v1", **group})
        return self._status(404, "NotFound", "the server could not find the requested resource")

    # resources

    def _resource(self, method: str, verb: str, api_path: ApiPath, query: dict[str, list[str]], body: bytes) -> int:
        cluster = self.replay.cluster
        resource = cluster.resource(api_path.group, api_path.version, api_path.plural)
        if resource is None:
            return self._status(404, "NotFound", "the server could not find the requested resource")

        if resource is AUTHORIZATION_TYPE:
            return self._access_review(method, body)
        if self.replay.is_denied(api_path.group, api_path.plural, api_path.subresource):
            return self._forbidden(verb, api_path)
        if api_path.subresource == "log":
            return self._log(api_path, query)
        if api_path.subresource == "exec":
            return self._exec(api_path, query)
        if api_path.subresource == "portforward":
            return self._status(400, "BadRequest", "the replay server does not serve port-forward; "
                                "it has no recorded stream to replay")
        if api_path.subresource == "ephemeralcontainers" and method == "PATCH":
            return self._add_ephemeral_container(api_path, body)
        if method != "GET":
            return self._status(405, "MethodNotAllowed", f"the replay server does not accept {method} here")
        if api_path.name:
            found = _find(cluster, resource, api_path.namespace, api_path.name)
            if found is None:
                return self._not_found(api_path)
            return self._send_json(200, _served(found, resource, api_path.version))
        return self._list(resource, api_path, query)

    def _list(self, resource: ResourceType, api_path: ApiPath, query: dict[str, list[str]]) -> int:
        items = list(self.replay.cluster.objects.get((resource.group, resource.plural), []))
        if api_path.namespace is not None:
            items = [obj for obj in items if obj["metadata"].get("namespace") == api_path.namespace]
        label_selector = query.get("labelSelector", [""])[0]
        field_selector = query.get("fieldSelector", [""])[0]
        items = [obj for obj in items
                 if _labels_match(obj, label_selector) and _fields_match(obj, field_selector)]
        api_version = f"{resource.group}/{api_path.version}" if resource.group else api_path.version
        return self._send_json(200, {
            "kind": f"{resource.kind}List", "apiVersion": api_version,
            "metadata": {"resourceVersion": "48213"},
            "items": [_served(obj, resource, api_path.version, with_type=False) for obj in items]})

    def _access_review(self, method: str, body: bytes) -> int:
        if method != "POST":
            return self._status(405, "MethodNotAllowed", "selfsubjectaccessreviews accepts POST only")
        try:
            if body.startswith(PROTOBUF_MAGIC):
                # kubectl sends built-in types as protobuf; the response may still be JSON.
                attributes = _review_attributes_from_protobuf(body)
                review = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                          "spec": {"resourceAttributes": attributes}}
            else:
                review = json.loads(body or b"{}")
                attributes = review["spec"]["resourceAttributes"]
        except (ValueError, KeyError, TypeError, IndexError):
            return self._status(400, "BadRequest", "expected a SelfSubjectAccessReview with spec.resourceAttributes")
        denied = self.replay.is_denied(attributes.get("group", ""), attributes.get("resource", ""),
                                       attributes.get("subresource") or None)
        review["status"] = {"allowed": not denied}
        if denied:
            review["status"]["reason"] = "no RBAC rule allows it (replay server)"
        review.setdefault("metadata", {})["creationTimestamp"] = None
        return self._send_json(201, review)

    def _log(self, api_path: ApiPath, query: dict[str, list[str]]) -> int:
        container = query.get("container", [""])[0] or _first_container(self.replay.cluster, api_path)
        key: tuple[str, ...] = (api_path.namespace or "", api_path.name or "", container)
        if query.get("previous", ["false"])[0] == "true":
            key += ("previous",)
        text = self.replay.cluster.logs.get(key)
        if text is None:
            if _find(self.replay.cluster, CORE_TYPES[0], api_path.namespace, api_path.name or "") is None:
                return self._not_found(ApiPath("", "v1", api_path.namespace, "pods", api_path.name, None))
            return self._status(400, "BadRequest",
                                f'container "{container}" in pod "{api_path.name}" has no log in this recording')
        tail = query.get("tailLines", [""])[0]
        if tail.isdigit():
            text = "".join(text.splitlines(keepends=True)[-int(tail):])
        return self._send_text(200, text)

    def _add_ephemeral_container(self, api_path: ApiPath, body: bytes) -> int:
        pod = _find(self.replay.cluster, CORE_TYPES[0], api_path.namespace, api_path.name or "")
        if pod is None:
            return self._not_found(ApiPath("", "v1", api_path.namespace, "pods", api_path.name, None))
        try:
            patch = json.loads(body)
        except ValueError:
            return self._status(400, "BadRequest", "the patch is not JSON")
        added = _ephemeral_containers_from_patch(patch, pod)
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for container in added:
            pod["spec"].setdefault("ephemeralContainers", []).append(container)
            pod["status"].setdefault("ephemeralContainerStatuses", []).append({
                "name": container["name"], "image": container.get("image", ""), "ready": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}})
            log = self.replay.cluster.ephemeral_logs.get(container.get("image", ""))
            if log is not None:
                key = (api_path.namespace or "", api_path.name or "", container["name"])
                self.replay.cluster.logs[key] = log
        return self._send_json(200, pod)

    # exec over WebSocket

    def _exec(self, api_path: ApiPath, query: dict[str, list[str]]) -> int:
        offered = [p.strip() for p in (self.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        protocol = next((p for p in EXEC_PROTOCOLS if p in offered), None)
        key = self.headers.get("Sec-WebSocket-Key")
        if self.headers.get("Upgrade", "").lower() != "websocket" or key is None or protocol is None:
            return self._status(400, "BadRequest", "the replay server speaks exec over WebSocket "
                                f"({', '.join(EXEC_PROTOCOLS)}) only")

        container = query.get("container", [""])[0] or _first_container(self.replay.cluster, api_path)
        command = tuple(query.get("command", []))
        recorded = self.replay.cluster.exec.get((api_path.namespace or "", api_path.name or "", container, *command))

        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.wfile.flush()

        if recorded is None:
            status = {"metadata": {}, "status": "Failure", "reason": "InternalError",
                      "message": f"command {list(command)} in container {container!r} is not in this recording"}
        else:
            stdout, exit_code = recorded
            for start in range(0, len(stdout.encode()), 32 * 1024):
                self._ws_send(b"\x01" + stdout.encode()[start:start + 32 * 1024])
            if exit_code == 0:
                status = {"metadata": {}, "status": "Success"}
            else:
                status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                          "message": f"command terminated with non-zero exit code: exit status {exit_code}",
                          "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}
        self._ws_send(b"\x03" + json.dumps(status).encode())
        self._ws_send(struct.pack("!H", 1000), opcode=0x8)
        self._drain_until_close()
        self.close_connection = True
        return 101

    def _ws_send(self, payload: bytes, opcode: int = 0x2) -> None:
        header = bytes([0x80 | opcode])
        size = len(payload)
        if size < 126:
            header += bytes([size])
        elif size < 1 << 16:
            header += bytes([126]) + struct.pack("!H", size)
        else:
            header += bytes([127]) + struct.pack("!Q", size)
        self.wfile.write(header + payload)
        self.wfile.flush()

    def _drain_until_close(self, timeout_s: float = 2.0) -> None:
        """Read client frames until the client's close frame or a timeout, so kubectl gets a clean close."""
        self.connection.settimeout(timeout_s)
        try:
            while True:
                head = self.rfile.read(2)
                if len(head) < 2:
                    return
                opcode, size = head[0] & 0x0F, head[1] & 0x7F
                if size == 126:
                    size = struct.unpack("!H", self.rfile.read(2))[0]
                elif size == 127:
                    size = struct.unpack("!Q", self.rfile.read(8))[0]
                mask = self.rfile.read(4) if head[1] & 0x80 else b""
                self.rfile.read(size)
                del mask
                if opcode == 0x8:
                    return
        except (OSError, struct.error):
            return


# --- helpers --------------------------------------------------------------------------


def _api_groups(cluster: ReplayCluster) -> list[dict[str, Any]]:
    groups: dict[str, list[str]] = {}
    for resource in cluster.types + (AUTHORIZATION_TYPE,):
        if resource.group:
            versions = groups.setdefault(resource.group, [])
            versions.extend(v for v in resource.versions if v not in versions)
    return [{"name": name, "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
             "preferredVersion": {"groupVersion": f"{name}/{versions[0]}", "version": versions[0]}}
            for name, versions in groups.items()]


def _resource_list(cluster: ReplayCluster, group: str, version: str) -> dict[str, Any]:
    resources = []
    for resource in cluster.types + (AUTHORIZATION_TYPE,):
        if resource.group != group or version not in resource.versions:
            continue
        resources.append({"name": resource.plural, "singularName": resource.kind.lower(),
                          "namespaced": resource.namespaced, "kind": resource.kind, "verbs": list(resource.verbs),
                          "shortNames": list(resource.short_names)})
        for subresource in resource.subresources:
            verbs = ["get"] if subresource == "log" else ["get", "create"]
            if subresource == "ephemeralcontainers":
                verbs = ["get", "patch", "update"]
            resources.append({"name": f"{resource.plural}/{subresource}", "singularName": "",
                              "namespaced": resource.namespaced, "kind": resource.kind, "verbs": verbs})
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _find(cluster: ReplayCluster, resource: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
    for obj in cluster.objects.get((resource.group, resource.plural), []):
        metadata = obj["metadata"]
        if metadata.get("name") == name and (not resource.namespaced or metadata.get("namespace") == namespace):
            return obj
    return None


def _served(obj: dict[str, Any], resource: ResourceType, version: str, *, with_type: bool = True) -> dict[str, Any]:
    served = copy.deepcopy(obj)
    if with_type:
        served["apiVersion"] = f"{resource.group}/{version}" if resource.group else version
    else:
        served.pop("apiVersion", None)
        served.pop("kind", None)
    return served


def _first_container(cluster: ReplayCluster, api_path: ApiPath) -> str:
    pod = _find(cluster, CORE_TYPES[0], api_path.namespace, api_path.name or "")
    containers = (pod or {}).get("spec", {}).get("containers") or [{}]
    return containers[0].get("name", "")


def _labels_match(obj: dict[str, Any], selector: str) -> bool:
    """Match equality (`a=b`, `a==b`, `a!=b`) and existence (`a`, `!a`) terms; other forms match nothing."""
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif " in " in term or " notin " in term:
            return False
        elif term not in labels:
            return False
    return True


def _fields_match(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, (part.strip() for part in selector.split(","))):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        current: Any = obj
        for part in key.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if (str(current) == value) == negate:
            return False
    return True


def _ephemeral_containers_from_patch(patch: dict[str, Any], pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the ephemeral containers a strategic-merge or JSON patch adds to `pod`."""
    existing = {c["name"] for c in pod["spec"].get("ephemeralContainers", [])}
    if isinstance(patch, list):
        candidates = [op.get("value") for op in patch if isinstance(op, dict)]
        containers = [c for c in candidates if isinstance(c, dict) and "name" in c]
    else:
        containers = patch.get("spec", {}).get("ephemeralContainers", [])
    return [c for c in containers if isinstance(c, dict) and c.get("name") not in existing]


def _protobuf_fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Decode one protobuf message into field number -> values (varints and length-delimited bytes)."""
    fields: dict[int, list[bytes | int]] = {}
    index = 0

    def varint() -> int:
        nonlocal index
        value, shift = 0, 0
        while True:
            byte = data[index]
            index += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    while index < len(data):
        key = varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields.setdefault(number, []).append(varint())
        elif wire_type == 2:
            size = varint()
            fields.setdefault(number, []).append(data[index:index + size])
            index += size
        else:
            raise ValueError(f"protobuf wire type {wire_type} is not used by SelfSubjectAccessReview")
    return fields


def _review_attributes_from_protobuf(body: bytes) -> dict[str, str]:
    """Read spec.resourceAttributes of a SelfSubjectAccessReview in Kubernetes' protobuf envelope."""
    envelope = _protobuf_fields(body[len(PROTOBUF_MAGIC):])
    review = _protobuf_fields(envelope[2][0])  # runtime.Unknown.raw
    spec = _protobuf_fields(review[2][0])
    attributes = _protobuf_fields(spec[1][0])
    names = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}
    return {name: attributes[number][0].decode() for number, name in names.items() if number in attributes}


def _make_certificates() -> tuple[bytes, bytes, bytes]:
    """Create a CA and a server certificate for 127.0.0.1; return (CA PEM, server PEM, server key PEM)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mesh-doctor replay CA")])
    ca_cert = (x509.CertificateBuilder()
               .subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))

    return (ca_cert.public_bytes(serialization.Encoding.PEM),
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
