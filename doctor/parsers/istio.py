"""Istio resources in YAML or JSON, including legacy kinds read for what they meant.

A document may be one resource, a multi-document YAML stream, or a
`kind: List` as `kubectl get -o yaml|json` prints it. Objects that are not
Istio resources (Pods, Services, Deployments) are ignored here; other readers
take files that hold only those.

Legacy kinds are translated to the current kind that has the same effect:

- `authentication.istio.io/v1alpha1` `MeshPolicy` becomes a mesh-wide
  `PeerAuthentication` (`peers: [{mtls: {}}]` is STRICT, `mtls: {mode:
  PERMISSIVE}` is PERMISSIVE, no peers is DISABLE);
- `authentication.istio.io/v1alpha1` `Policy` becomes a `PeerAuthentication`
  (from `peers`) and, when it has `origins`, a `RequestAuthentication`;
- `rbac.istio.io` `ServiceRoleBinding` joined with its `ServiceRole` becomes
  an ALLOW `AuthorizationPolicy`, and `ClusterRbacConfig`/`RbacConfig` with
  mode ON becomes a mesh-wide allow-nothing `AuthorizationPolicy`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from doctor.model import Document, ParseProblem, ParseResult
from doctor.parsers import envoy_admin
from doctor.parsers.structured import LineDict, flatten_lines, key_line, load_json_documents

logger = logging.getLogger(__name__)

KIND = "istio-resources"

_ISTIO_API = re.compile(r"^(?P<group>[a-z0-9.-]*istio\.io)/(?P<version>v[0-9a-z]+)$")
# An Istio object's apiVersion, in YAML or JSON. Config dumps mention istio.io only in type URLs.
_SNIFF_HINT = re.compile(r"""["']?apiVersion["']?\s*:\s*["']?[a-z0-9.-]*istio\.io/v""")


@dataclass(frozen=True)
class IstioResource:
    """One Istio resource.

    `kind` is the current kind. A legacy kind (`MeshPolicy`, the
    `authentication.istio.io/v1alpha1` `Policy`, `ClusterRbacConfig`,
    `ServiceRole`, `ServiceRoleBinding`) is kept in `legacy_kind`, and its spec
    is translated into the current kind's meaning in `spec`, while
    `original_spec` keeps the spec as the file wrote it. `line` is the line of the
    resource's first key; `key_lines` maps dotted key paths of the spec
    (such as "trafficPolicy.tls.mode") to their line in the source when the
    YAML loader knows it.

    `kind_line` is the line of the `kind:` key and `line_texts` holds the
    source text of every line named in `line`, `kind_line` and `key_lines`,
    so a check can cite the line without the document. A legacy resource's
    `key_lines` has both the original paths and the translated ones (for a
    MeshPolicy, "mtls.mode" points at the `peers` entry that set it).
    A mesh-wide legacy resource (MeshPolicy, ClusterRbacConfig) has
    `namespace` None.
    """

    source: str
    line: int | None
    kind: str
    api_version: str
    name: str
    namespace: str | None
    spec: dict[str, Any]
    original_spec: dict[str, Any]
    legacy_kind: str | None
    key_lines: dict[str, int]
    kind_line: int | None = None
    line_texts: dict[int, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """The resource as `Kind namespace/name`, as engineers name it in commands."""
        shown = self.legacy_kind or self.kind
        return f"{shown} {self.namespace}/{self.name}" if self.namespace else f"{shown} {self.name}"

    def line_of(self, path: str) -> int | None:
        """Return the line of a spec path, or of its nearest ancestor the loader saw."""
        probe = path
        while probe:
            if probe in self.key_lines:
                return self.key_lines[probe]
            probe = probe.rpartition(".")[0]
        return self.line

    def text_of(self, line: int | None) -> str:
        return self.line_texts.get(line, "") if line is not None else ""


def sniff(doc: Document) -> bool:
    """Return True when the document contains at least one Istio resource."""
    if not _SNIFF_HINT.search(doc.text):
        return False
    documents, _ = load_json_documents(doc.text)
    return any(_is_istio(obj) for loaded in documents for obj in _objects(loaded.data))


def parse(doc: Document) -> ParseResult:
    result, documents = envoy_admin.load_json_result(doc, KIND)

    lines = doc.text.splitlines()
    objects = [obj for loaded in documents for obj in _objects(loaded.data) if _is_istio(obj)]
    roles = {
        (_namespace(obj), _metadata(obj).get("name")): obj
        for obj in objects if obj.get("kind") == "ServiceRole"
    }

    for obj in objects:
        builder = _Builder(doc.source, lines, obj, result.problems)
        result.facts.extend(builder.build(roles))
        if obj.get("kind") == "EnvoyFilter":
            result.facts.extend(_envoy_filter_patch_facts(doc.source, lines, obj))
    return result


def _envoy_filter_patch_facts(source: str, lines: list[str], obj: dict) -> list[Any]:
    """Read the Envoy config an EnvoyFilter patches in (local rate limits, RBAC, JWT providers).

    The facts carry the patch's match as context: the listener field is
    "CONTEXT:port" (such as "SIDECAR_INBOUND:8080") and the route field names
    the virtual host and route the patch applies to.
    """
    facts: list[Any] = []
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    for patch in spec.get("configPatches") or []:
        if not isinstance(patch, dict):
            continue
        value = (patch.get("patch") or {}).get("value") if isinstance(patch.get("patch"), dict) else None
        if not isinstance(value, dict):
            continue
        match = patch.get("match") if isinstance(patch.get("match"), dict) else {}
        listener = match.get("listener") if isinstance(match.get("listener"), dict) else {}
        port = listener.get("portNumber") if listener else None
        context = match.get("context") or "ANY"
        route_configuration = match.get("routeConfiguration")
        route = None
        if isinstance(route_configuration, dict):
            vhost = route_configuration.get("vhost") if isinstance(route_configuration.get("vhost"), dict) else {}
            vhost_route = vhost.get("route") if isinstance(vhost.get("route"), dict) else {}
            route_name = vhost_route.get("name") or vhost_route.get("action") or "any route"
            route = f"{vhost.get('name') or 'any virtual host'} {route_name}"
            port = port or route_configuration.get("portNumber")
        facts.extend(envoy_admin.extract_config_facts(
            value, source, lines, listener=f"{context}:{port}" if port else str(context), route=route))
    return facts


def _objects(data: Any) -> Iterable[LineDict]:
    """Yield the objects of a document, unwrapping `kind: List` (and `*List`) items."""
    if not isinstance(data, dict):
        return
    items = data.get("items")
    kind = data.get("kind")
    if isinstance(items, list) and (kind is None or str(kind).endswith("List")):
        for item in items:
            if isinstance(item, dict):
                yield item
        return
    yield data


def _is_istio(obj: dict) -> bool:
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return False
    return bool(_ISTIO_API.match(api_version)) and kind != "List"


def _metadata(obj: dict) -> dict:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _namespace(obj: dict) -> str | None:
    namespace = _metadata(obj).get("namespace")
    return str(namespace) if namespace is not None else None


class _Builder:
    """Turns one loaded object into IstioResource facts, translating legacy kinds."""

    def __init__(self, source: str, lines: list[str], obj: LineDict,
                 problems: list[ParseProblem]) -> None:
        self.source = source
        self.lines = lines
        self.obj = obj
        self.problems = problems
        self.kind = str(obj["kind"])
        self.api_version = str(obj["apiVersion"])
        self.line = obj.line if isinstance(obj, LineDict) else None
        self.kind_line = key_line(obj, "kind")
        metadata = _metadata(obj)
        self.name = str(metadata.get("name") or "")
        self.namespace = _namespace(obj)
        if not self.name:
            self.problems.append(ParseProblem(
                source, self.line, f"{self.kind} without metadata.name; it is read but cannot be "
                                   "named in commands"))

        spec = obj.get("spec", {})
        if spec is None:
            spec = LineDict(key_line(obj, "spec"))
        if not isinstance(spec, dict):
            self.problems.append(ParseProblem(
                source, key_line(obj, "spec"),
                f"{self.kind} {self.name}: spec is a {type(spec).__name__}, not a mapping; "
                "it is read as empty"))
            spec = LineDict(key_line(obj, "spec"))
        self.spec = spec
        self.key_lines = flatten_lines(spec)

    def build(self, roles: dict) -> list[IstioResource]:
        if self.kind == "MeshPolicy":
            return [self._mesh_policy()]
        if self.kind == "Policy" and self.api_version.startswith("authentication.istio.io/"):
            return self._authentication_policy()
        if self.kind == "ServiceRole":
            # A role grants nothing until a binding names it, so its rules are read with the binding.
            return []
        if self.kind == "ServiceRoleBinding":
            return [self._role_binding(roles)]
        if self.kind in ("ClusterRbacConfig", "RbacConfig"):
            return self._rbac_config()
        return [self._resource(self.kind, envoy_admin.plain_copy(self.spec), None, self.key_lines)]

    def _resource(self, kind: str, spec: dict, legacy_kind: str | None,
                  key_lines: dict[str, int], namespace: str | None = "__same__") -> IstioResource:
        cited = set(key_lines.values()) | {self.line, self.kind_line}
        texts = {
            number: self.lines[number - 1]
            for number in cited if number is not None and 0 < number <= len(self.lines)
        }
        return IstioResource(
            source=self.source,
            line=self.line,
            kind=kind,
            api_version=self.api_version,
            name=self.name,
            namespace=self.namespace if namespace == "__same__" else namespace,
            spec=spec,
            original_spec=envoy_admin.plain_copy(self.spec),
            legacy_kind=legacy_kind,
            key_lines=dict(key_lines),
            kind_line=self.kind_line,
            line_texts=texts,
        )

    def _mtls_mode(self, spec: dict) -> tuple[str, int | None]:
        """Return the PeerAuthentication mode a v1alpha1 `peers` list meant, and its line."""
        peers = spec.get("peers")
        if not isinstance(peers, list) or not peers:
            return "DISABLE", key_line(spec, "peers") or self.kind_line
        for index, peer in enumerate(peers):
            if not isinstance(peer, dict) or "mtls" not in peer:
                continue
            mtls = peer.get("mtls") or {}
            mode = str(mtls.get("mode", "STRICT")).upper() if isinstance(mtls, dict) else "STRICT"
            line = key_line(mtls, "mode") or key_line(peer, "mtls") or key_line(peers, index)
            return ("PERMISSIVE" if mode == "PERMISSIVE" else "STRICT"), line
        return "DISABLE", key_line(spec, "peers")

    def _mesh_policy(self) -> IstioResource:
        mode, line = self._mtls_mode(self.spec)
        key_lines = dict(self.key_lines)
        if line is not None:
            key_lines["mtls"] = line
            key_lines["mtls.mode"] = line
        return self._resource("PeerAuthentication", {"mtls": {"mode": mode}}, "MeshPolicy",
                              key_lines, namespace=None)

    def _authentication_policy(self) -> list[IstioResource]:
        mode, line = self._mtls_mode(self.spec)
        targets = envoy_admin.plain_copy(self.spec.get("targets") or [])
        peer_spec: dict[str, Any] = {"mtls": {"mode": mode}}
        if targets:
            peer_spec["targets"] = targets
        key_lines = dict(self.key_lines)
        if line is not None:
            key_lines["mtls"] = line
            key_lines["mtls.mode"] = line
        resources = [self._resource("PeerAuthentication", peer_spec, "Policy", key_lines)]

        origins = self.spec.get("origins")
        if isinstance(origins, list) and origins:
            rules = []
            jwt_lines = dict(self.key_lines)
            for index, origin in enumerate(origins):
                jwt = origin.get("jwt") if isinstance(origin, dict) else None
                if not isinstance(jwt, dict):
                    continue
                rule = {key: envoy_admin.plain_copy(value) for key, value in jwt.items()
                        if key in ("issuer", "jwksUri", "jwks", "audiences")}
                if "jwtHeaders" in jwt:
                    rule["fromHeaders"] = [{"name": name} for name in jwt["jwtHeaders"] or []]
                if "jwtParams" in jwt:
                    rule["fromParams"] = list(jwt["jwtParams"] or [])
                position = len(rules)
                for key in rule:
                    original = f"origins.{index}.jwt.{key}"
                    if original in self.key_lines:
                        jwt_lines[f"jwtRules.{position}.{key}"] = self.key_lines[original]
                jwt_lines[f"jwtRules.{position}"] = self.key_lines.get(f"origins.{index}", self.line)
                rules.append(rule)
            request_spec: dict[str, Any] = {"jwtRules": rules}
            if targets:
                request_spec["targets"] = targets
            resources.append(self._resource("RequestAuthentication", request_spec, "Policy",
                                            jwt_lines))
        return resources

    def _role_binding(self, roles: dict) -> IstioResource:
        key_lines = dict(self.key_lines)
        principals: list[str] = []
        namespaces: list[str] = []
        for index, subject in enumerate(self.spec.get("subjects") or []):
            if not isinstance(subject, dict):
                continue
            user = subject.get("user") or subject.get("principal")
            if user:
                key_lines[f"rules.0.from.0.source.principals.{len(principals)}"] = \
                    self.key_lines.get(f"subjects.{index}", self.line)
                principals.append(str(user))
            properties = subject.get("properties") or {}
            source_namespace = properties.get("source.namespace") if isinstance(properties, dict) else None
            for value in [source_namespace] + list(subject.get("namespaces") or []):
                if value:
                    key_lines[f"rules.0.from.0.source.namespaces.{len(namespaces)}"] = \
                        self.key_lines.get(f"subjects.{index}", self.line)
                    namespaces.append(str(value))

        sources = []
        if principals:
            sources.append({"source": {"principals": principals}})
        if namespaces:
            sources.append({"source": {"namespaces": namespaces}})
        rule: dict[str, Any] = {"from": sources} if sources else {}

        role_ref = self.spec.get("roleRef") or {}
        role_name = role_ref.get("name") if isinstance(role_ref, dict) else None
        role_name = role_name or self.spec.get("role")
        role = roles.get((self.namespace, role_name))
        operations = []
        services: list[str] = []
        if role is not None:
            for role_rule in (role.get("spec") or {}).get("rules") or []:
                if not isinstance(role_rule, dict):
                    continue
                services.extend(str(service) for service in role_rule.get("services") or [])
                operation = {key: [str(item) for item in role_rule.get(key) or []]
                             for key in ("methods", "paths") if role_rule.get(key)}
                operations.append({"operation": operation} if operation else {"operation": {}})
        else:
            self.problems.append(ParseProblem(
                self.source, self.line,
                f"ServiceRoleBinding {self.name} names ServiceRole {role_name!r}, which is not in "
                "this file; its allowed operations are unknown"))
        if operations:
            rule["to"] = operations

        spec: dict[str, Any] = {"action": "ALLOW", "rules": [rule]}
        if services:
            spec["services"] = services
        return self._resource("AuthorizationPolicy", spec, "ServiceRoleBinding", key_lines)

    def _rbac_config(self) -> list[IstioResource]:
        mode = self.spec.get("mode")
        # Unquoted ON and OFF are YAML 1.1 booleans.
        if mode is True:
            mode = "ON"
        elif mode is False:
            mode = "OFF"
        mode = str(mode or "OFF").upper()
        if mode == "OFF":
            logger.debug("%s %s has mode OFF: no RBAC enforcement", self.kind, self.name)
            return []
        spec: dict[str, Any] = {}
        if mode == "ON_WITH_INCLUSION":
            spec["inclusion"] = envoy_admin.plain_copy(self.spec.get("inclusion") or {})
        elif mode == "ON_WITH_EXCLUSION":
            spec["exclusion"] = envoy_admin.plain_copy(self.spec.get("exclusion") or {})
        return [self._resource("AuthorizationPolicy", spec, self.kind, self.key_lines, namespace=None)]


def is_mesh_wide(resource: IstioResource, root_namespace: str = "istio-system") -> bool:
    """Return True for a resource that applies to the whole mesh.

    That is a legacy mesh-wide kind, or a resource in the Istio root namespace
    without a workload selector. The root namespace is `istio-system` unless
    meshConfig.rootNamespace changes it.
    """
    if resource.namespace is None:
        return True
    spec = resource.spec
    return resource.namespace == root_namespace and not spec.get("selector") and not spec.get("targets")
