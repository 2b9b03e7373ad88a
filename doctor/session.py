"""Guided sessions: walk one playbook step by step, with every action in the journal.

A `Session` is the state machine behind the TUI's session screen and behind
`mesh-doctor resume`. It fills the `{placeholders}` of a step's commands from
the finding, runs check commands through a caller-supplied runner, branches
on answers, goes back, and records each step, command, answer and
confirmation in the session journal before the method returns, so the UI
moves on only after the entry is on disk.

A mutating command runs only through `run_remediation`, which needs a
`Confirmation` from `confirm` for that exact command in the current kube
context. `confirm` rejects every mutation in a read-only session, after the
kube context changed until the engineer accepts the new context, and in a
production context unless the engineer typed the resource name.

`Session.resume` rebuilds a session from its journal: the completed steps,
answers and values come back, and a step that was in progress when the
process died starts again.

This module is core: it imports no UI, terminal, command-runner or cluster
library. Commands run through any object with the `CommandRunner` shape,
which in practice is `doctor.runner.Runner`.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import yaml

from doctor import journal as journal_kinds
from doctor.diagnosis import Finding
from doctor.facts import FactSet
from doctor.journal import Journal, read_journal
from doctor.model import Observation, ParseProblem, ProbeStatus
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.kube import PodInfo
from doctor.playbooks import Playbook, Step

logger = logging.getLogger(__name__)

# Step results.
PASSED = "passed"
FAILED = "failed"
COULD_NOT_RUN = "could_not_run"
SHOWN = "shown"  # a check without a command: the engineer ran or read it
ANSWERED = "answered"
READ = "read"  # a note
APPLIED = "applied"  # a remediation command that exited 0
REFUSED = "refused"  # a remediation the session would not run
SKIPPED = "skipped"  # a remediation the engineer chose not to run
ROLLED_BACK = "rolled_back"
STEP_RESULTS = (PASSED, FAILED, COULD_NOT_RUN, SHOWN, ANSWERED, READ, APPLIED, REFUSED, SKIPPED,
                ROLLED_BACK)

# Placeholder names a playbook may use. Anything else in braces, such as the
# kubectl JSONPath `{.status.phase}`, `{range .items[*]}` or `{end}`, is left alone.
PLACEHOLDERS = frozenset({
    "admin_port", "caller_namespace", "caller_pod", "caller_principal", "client_ip",
    "client_namespace", "client_pod", "client_port", "cluster", "configured_issuer",
    "container", "current_mtu", "deployment", "destination_rule", "envoyfilter", "host",
    "jwks_uri", "local_ratelimit_value_path", "max_tokens", "name", "namespace",
    "new_max_tokens", "new_principal_index", "new_rule_index", "node", "overflow",
    "peer_authentication", "peer_node_ip", "pod", "policy", "policy_namespace", "port",
    "previous_mode", "removed_rule_json", "replicas", "rule", "secret", "service",
    "tls_mode", "token", "token_bucket_path", "token_issuer", "tokens_per_fill", "url",
})
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_REPLICASET_POD = re.compile(r"^([a-z0-9][a-z0-9-]*?)-[a-z0-9]{6,10}-[a-z0-9]{5}$")

OUTPUT_EXCERPT_CHARS = 4000
CONFIG_NAME = "config.yaml"


class SessionError(RuntimeError):
    """Raised when a session action does not fit the current step or the journal cannot be used."""


class MutationRefused(SessionError):
    """Raised when a mutating command may not run: read-only, unconfirmed, or the context changed."""


class CommandRunner(Protocol):
    """The part of `doctor.runner.Runner` a session uses."""

    def run(self, argv: Sequence[str], *, probe_id: str, timeout: float | None = None,
            allow_mutation: bool = False, target: str = "",
            on_output: Callable[[str], None] | None = None) -> Observation: ...


# --- placeholders -------------------------------------------------------------


def placeholders_in(argv: Iterable[str]) -> list[str]:
    """Return the known placeholder names in `argv`, each once, in order of appearance."""
    names: list[str] = []
    for part in argv:
        for match in _PLACEHOLDER.finditer(part):
            name = match.group(1)
            if name in PLACEHOLDERS and name not in names:
                names.append(name)
    return names


def fill(argv: Iterable[str], values: Mapping[str, str]) -> tuple[str, ...]:
    """Replace each known `{placeholder}` that has a value; leave other braces as they are."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in PLACEHOLDERS and name in values:
            return str(values[name])
        return match.group(0)

    return tuple(_PLACEHOLDER.sub(replace, part) for part in argv)


def values_from_facts(finding: Finding | None, facts: FactSet) -> dict[str, str]:
    """Derive placeholder values (namespace, pod, service, caller …) from the facts a finding cites.

    The pod whose access log or status the finding cites is `{pod}`. The pod
    whose IP is the downstream address of a cited server-side access-log line
    is the caller. Values that the facts do not determine are left out, so the
    session asks the engineer for them.
    """
    pods = facts.of(PodInfo)
    entries = facts.of(AccessLogEntry)
    cited = {(item.source, item.line) for item in (finding.evidence if finding else ()) if item.supports}
    cited_sources = {source for source, _ in cited}
    values: dict[str, str] = {}

    pod = _pod_named_in(pods, cited_sources) or _pod_with_cited_status(pods, cited)
    cited_entries = [entry for entry in entries if (entry.source, entry.line) in cited]
    if pod is None and len(pods) == 1:
        pod = pods[0]
    if pod is not None:
        values["pod"] = pod.name
        if pod.namespace:
            values["namespace"] = pod.namespace
        if pod.node_name:
            values["node"] = pod.node_name
        deployment = _deployment_of(pod)
        if deployment:
            values["deployment"] = deployment
        app_containers = [c.name for c in pod.containers if c.name != "istio-proxy" and not c.is_init]
        if len(app_containers) == 1:
            values["container"] = app_containers[0]
        service = pod.labels.get("app") or pod.labels.get("app.kubernetes.io/name")
        if service:
            values["service"] = service

    for entry in cited_entries:
        service = _service_of(entry)
        if service and "service" not in values:
            values["service"] = service
        if entry.authority and "host" not in values:
            values["host"] = entry.authority
        if entry.upstream_cluster and "cluster" not in values:
            values["cluster"] = entry.upstream_cluster
        caller = _pod_with_ip(pods, _ip_of(entry.downstream_remote_address))
        if caller is not None and (pod is None or caller.name != pod.name) and "caller_pod" not in values:
            values["caller_pod"] = caller.name
            values["client_pod"] = caller.name
            if caller.namespace:
                values["caller_namespace"] = caller.namespace
                values["client_namespace"] = caller.namespace
                account = caller.service_account or "default"
                values["caller_principal"] = f"cluster.local/ns/{caller.namespace}/sa/{account}"
            if caller.pod_ip:
                values["client_ip"] = caller.pod_ip
    return values


def _pod_named_in(pods: list[Any], sources: set[str]) -> Any:
    for pod in sorted(pods, key=lambda item: -len(item.name)):
        if any(pod.name in Path(source).name for source in sources):
            return pod
    return None


def _pod_with_cited_status(pods: list[Any], cited: set[tuple[str, int | None]]) -> Any:
    for pod in pods:
        lines = {pod.line} | {container.line for container in pod.containers}
        lines |= {container.state_line for container in pod.containers}
        lines |= {container.last_state_line for container in pod.containers}
        if any((pod.source, line) in cited for line in lines if line is not None):
            return pod
    return None


def _pod_with_ip(pods: list[Any], ip: str | None) -> Any:
    if not ip:
        return None
    for pod in pods:
        if ip == pod.pod_ip or ip in pod.pod_ips:
            return pod
    return None


def _ip_of(address: str | None) -> str | None:
    if not address or address == "-":
        return None
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def _deployment_of(pod: Any) -> str | None:
    """Return the Deployment name of a ReplicaSet pod (name minus the template hash and suffix)."""
    template_hash = pod.labels.get("pod-template-hash")
    if template_hash and f"-{template_hash}-" in pod.name:
        return pod.name.split(f"-{template_hash}-", 1)[0]

    # Without the label, the ReplicaSet naming pattern: NAME-HASH-SUFFIX, with
    # a 5-character random suffix and a template hash of 6 to 10 characters.
    match = _REPLICASET_POD.match(pod.name)
    return match.group(1) if match else None


def _service_of(entry: Any) -> str | None:
    """Return the service name from an Envoy cluster name such as `outbound|8000||httpbin.default.svc.cluster.local`."""
    cluster = entry.upstream_cluster or ""
    parts = cluster.split("|")
    if len(parts) == 4 and parts[3]:
        return parts[3].split(".", 1)[0]
    authority = (entry.authority or "").split(":", 1)[0]
    return authority.split(".", 1)[0] or None


# --- kube context and production marks -----------------------------------------


@dataclass(frozen=True)
class KubeContext:
    """The target of mutations: the kubeconfig's current context, its cluster and namespace."""

    context: str | None
    cluster: str | None = None
    namespace: str | None = None

    @property
    def label(self) -> str:
        if self.context is None:
            return "no kube context"
        return f"{self.context} · cluster {self.cluster or '?'} · namespace {self.namespace or 'default'}"


def current_kube_context(environ: Mapping[str, str] | None = None) -> KubeContext:
    """Read the current context from $KUBECONFIG (the first file that sets one) or ~/.kube/config."""
    environ = os.environ if environ is None else environ
    listed = environ.get("KUBECONFIG", "")
    paths = [Path(part) for part in listed.split(os.pathsep) if part] if listed else []
    if not paths:
        paths = [Path(environ.get("HOME", str(Path.home()))) / ".kube" / "config"]
    configs = []
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            logger.debug("kubeconfig %s not read: %s", path, error)
            continue
        if isinstance(data, dict):
            configs.append(data)

    name = next((c["current-context"] for c in configs if c.get("current-context")), None)
    if name is None:
        return KubeContext(None)
    for config in configs:
        for entry in config.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                details = entry.get("context") or {}
                return KubeContext(str(name), details.get("cluster"), details.get("namespace"))
    return KubeContext(str(name))


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", str(Path.home()))) / ".config")
    return Path(base) / "mesh-doctor" / CONFIG_NAME


def load_production_contexts(path: Path | None = None) -> tuple[tuple[str, ...], list[ParseProblem]]:
    """Read `production_contexts` (names or shell patterns such as `prod-*`) from the config file.

    A missing file marks no context. An invalid file also marks no context and
    is returned as a problem, so the caller shows it to the engineer.
    """
    path = path or config_path()
    if not path.exists():
        return (), []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        return (), [ParseProblem(str(path), None, f"config not read: {error}")]
    patterns = data.get("production_contexts", []) if isinstance(data, dict) else None
    if not isinstance(patterns, list) or not all(isinstance(item, str) for item in patterns):
        return (), [ParseProblem(str(path), None, "production_contexts must be a list of context "
                                 "names or patterns, such as [prod-eu, 'prod-*']")]
    return tuple(patterns), []


def is_production(context: str | None, patterns: Iterable[str]) -> bool:
    return context is not None and any(fnmatch.fnmatchcase(context, pattern) for pattern in patterns)


# --- remediation ---------------------------------------------------------------


@dataclass(frozen=True)
class RemediationPlan:
    """The content of the confirmation dialog before a mutating step runs."""

    step_id: str
    title: str
    command: tuple[str, ...]
    dry_run: tuple[str, ...]
    rollback: tuple[str, ...]
    verify: str | None
    resource: str
    context: KubeContext
    production: bool
    dry_run_result: "CommandResult | None" = None
    diff: str = ""


@dataclass(frozen=True)
class Confirmation:
    """The engineer's yes to one command in one kube context; `run_remediation` checks both."""

    step_id: str
    argv: tuple[str, ...]
    context: str | None
    action: str  # "apply" or "rollback"


@dataclass(frozen=True)
class CommandResult:
    """One command of a step as it ran, with its output kept for the screen."""

    argv: tuple[str, ...]
    status: str  # a ProbeStatus value
    exit_status: int | None
    output: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.status == ProbeStatus.OK.value


def resource_name(argv: Sequence[str]) -> str:
    """Return `kind/name` (or the target URL) a mutating command acts on, for the typed confirmation."""
    words = [part for part in argv[1:] if not part.startswith("-")]
    program = os.path.basename(argv[0]) if argv else ""
    if program in ("kubectl", "oc") and words:
        skip = {"-n", "--namespace", "-p", "--patch", "--type", "-o", "--output", "-c", "--context"}
        positional: list[str] = []
        hide_next = False
        for part in argv[1:]:
            if hide_next:
                hide_next = False
                continue
            if part in skip:
                hide_next = True
                continue
            if not part.startswith("-"):
                positional.append(part)
        verb_args = positional[1:]
        if positional and positional[0] == "rollout":
            verb_args = positional[2:]
        if len(verb_args) >= 2 and "/" not in verb_args[0]:
            return f"{verb_args[0]}/{verb_args[1]}"
        if verb_args:
            return verb_args[0]
    urls = [part for part in argv if "://" in part]
    if urls:
        return urls[-1].split("?", 1)[0]
    return " ".join(argv[:3])


def current_state_argv(command: Sequence[str]) -> tuple[str, ...] | None:
    """Return the `kubectl get … -o yaml` that shows what a kubectl patch, label or scale changes."""
    if not command or os.path.basename(command[0]) not in ("kubectl", "oc"):
        return None
    args = list(command[1:])
    verbs = [part for part in args if not part.startswith("-")]
    if not verbs or verbs[0] not in ("patch", "label", "annotate", "scale", "set"):
        return None
    resource = resource_name(command)
    if "/" not in resource:
        return None
    namespace: list[str] = []
    for flag in ("-n", "--namespace"):
        if flag in args and args.index(flag) + 1 < len(args):
            namespace = ["-n", args[args.index(flag) + 1]]
    return (command[0], "get", resource, *namespace, "-o", "yaml")


def unified_diff(before: str, after: str, resource: str) -> str:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(),
                                 fromfile=f"{resource} (now)", tofile=f"{resource} (after)",
                                 lineterm="")
    return "\n".join(lines)


# --- the session ---------------------------------------------------------------


@dataclass
class StepRecord:
    """The latest result of one step, as the journal records it."""

    step_id: str
    result: str
    reason: str = ""
    commands: list[CommandResult] = field(default_factory=list)
    answer: str | None = None


class Session:
    """One walk through one playbook, recorded in one journal."""

    def __init__(self, playbook: Playbook, journal: Journal, *, values: Mapping[str, str] | None = None,
                 read_only: bool = False, context: KubeContext | None = None,
                 production_contexts: Iterable[str] = (), actor: str = "engineer") -> None:
        self.playbook = playbook
        self.journal = journal
        self.values: dict[str, str] = dict(values or {})
        self.read_only = read_only
        self.context = context or KubeContext(None)
        self.production_contexts = tuple(production_contexts)
        self.actor = actor
        self.path: list[str] = []
        self.records: dict[str, StepRecord] = {}
        self.verifying: dict[str, str] = {}  # verify step id -> remediation step id
        self.context_changed_to: KubeContext | None = None
        self.finished = False
        self.verified: list[str] = []  # remediation steps whose verify step passed
        self.problems: list[ParseProblem] = []

    # --- starting and resuming ---

    @classmethod
    def start(cls, playbook: Playbook, journal: Journal, *, finding: Finding | None = None,
              paths: Sequence[str] = (), values: Mapping[str, str] | None = None,
              read_only: bool = False, context: KubeContext | None = None,
              production_contexts: Iterable[str] = (), actor: str = "engineer",
              symptom: Mapping[str, str] | None = None) -> "Session":
        """Open a new session, journal its start and the finding, and begin the first step.

        `symptom` is the engineer's description from the symptom form, when
        the evidence was collected for it rather than read from files.
        """
        session = cls(playbook, journal, values=values, read_only=read_only, context=context,
                      production_contexts=production_contexts, actor=actor)
        ctx = session.context
        journal.append(journal_kinds.SESSION_STARTED, {
            "playbook": playbook.id, "playbook_title": playbook.title, "values": dict(session.values),
            "read_only": read_only, "context": ctx.context, "cluster": ctx.cluster,
            "namespace": ctx.namespace, "paths": [str(path) for path in paths],
            "production": session.production, "symptom": dict(symptom) if symptom else None,
        }, actor=actor)
        if finding is not None:
            journal.append(journal_kinds.FINDING, {
                "cause_id": finding.cause_id, "title": finding.title, "status": finding.status.value,
                "score": round(finding.score, 3), "chain": list(finding.chain),
                "evidence": [{"source": item.source, "line": item.line, "text": item.text[:300]}
                             for item in finding.evidence if item.supports][:5],
            })
        session._enter(playbook.steps[0].id)
        return session

    @classmethod
    def resume(cls, journal: Journal, playbooks: Mapping[str, Playbook], *,
               read_only: bool | None = None, context: KubeContext | None = None,
               production_contexts: Iterable[str] | None = None,
               actor: str = "engineer") -> "Session":
        """Rebuild a session from its journal and continue at the step it stopped in.

        Corrupt lines are skipped and listed in `problems`. The kube context
        recorded at the start is the confirmed one; when `context` differs,
        mutations stop until `accept_context`.
        """
        read = read_journal(journal.path)
        entries = read.entries
        started = next((entry for entry in entries if entry.kind == journal_kinds.SESSION_STARTED), None)
        if started is None:
            raise SessionError(f"{journal.path} has no session_started entry; it cannot be resumed")
        playbook_id = started.data.get("playbook")
        if playbook_id not in playbooks:
            raise SessionError(f"{journal.path}: playbook {playbook_id!r} is not among the installed "
                               "playbooks")

        recorded = KubeContext(started.data.get("context"), started.data.get("cluster"),
                               started.data.get("namespace"))
        session = cls(playbooks[playbook_id], journal, values=started.data.get("values") or {},
                      read_only=bool(started.data.get("read_only")) if read_only is None else read_only,
                      context=recorded,
                      production_contexts=() if production_contexts is None else production_contexts,
                      actor=actor)
        session.problems = list(read.problems)
        session._replay(entries)
        if session.read_only and not started.data.get("read_only"):
            logger.info("session %s resumed read-only", journal.session_id)
        if context is not None and context.context != recorded.context:
            session.context_changed_to = context
        if session.finished:
            return session
        if session.current is not None and session.current.id not in session.records:
            # The step was in progress when the process stopped: start it again.
            session.journal.append(journal_kinds.STEP_STARTED,
                                   {"step": session.current.id, "resumed": True}, actor=actor)
        journal.append(journal_kinds.NOTE, {"resumed": True, "at_step": session.path[-1] if session.path else None,
                                            "skipped_lines": [problem.line for problem in read.problems]},
                       actor=actor)
        return session

    def _replay(self, entries: Iterable[journal_kinds.JournalEntry]) -> None:
        for entry in entries:
            data = entry.data
            if entry.kind == journal_kinds.STEP_STARTED:
                step_id = data.get("step")
                if self.playbook.step(str(step_id)) is None:
                    continue
                self.finished = False  # going back after the end reopens the session
                if data.get("back") and step_id in self.path:
                    # `depth` is the path length after going back; a step can be on the path twice.
                    depth = int(data.get("depth") or len(self.path) - self.path[::-1].index(step_id))
                    del self.path[depth:]
                    self.records.pop(step_id, None)
                elif not data.get("resumed"):
                    self.path.append(step_id)
                    self.records.pop(step_id, None)
                if data.get("verifies"):
                    self.verifying[step_id] = data["verifies"]
            elif entry.kind == journal_kinds.STEP_RESULT:
                step_id = data.get("step")
                self.records[step_id] = StepRecord(
                    step_id, str(data.get("result")), str(data.get("reason", "")),
                    [CommandResult(tuple(c.get("argv", ())), c.get("status", ""), c.get("exit_status"),
                                   c.get("excerpt", ""), c.get("reason", ""))
                     for c in data.get("commands", [])],
                    data.get("answer"))
            elif entry.kind == journal_kinds.ANSWER and "placeholder" in data:
                self.values[str(data["placeholder"])] = str(data.get("value", ""))
            elif entry.kind == journal_kinds.MILESTONE and data.get("verified"):
                self.verified.append(str(data["verified"]))
            elif entry.kind == journal_kinds.MILESTONE and data.get("verification_withdrawn"):
                withdrawn = str(data["verification_withdrawn"])
                self.verified = [step_id for step_id in self.verified if step_id != withdrawn]
            elif entry.kind == journal_kinds.CONFIRMATION and data.get("action") == "context":
                self.context = KubeContext(data.get("context"), data.get("cluster"), data.get("namespace"))
            elif entry.kind == journal_kinds.SESSION_ENDED:
                self.finished = True

    # --- where the session is ---

    @property
    def session_id(self) -> str:
        return self.journal.session_id

    @property
    def production(self) -> bool:
        return is_production(self.context.context, self.production_contexts)

    @property
    def current(self) -> Step | None:
        if self.finished or not self.path:
            return None
        return self.playbook.step(self.path[-1])

    def progress(self) -> str:
        """Return a line such as `step 3 of 7 · 2 done · check: Read the logs`."""
        total = len(self.playbook.steps)
        done = len({step_id for step_id in self.path if step_id in self.records})
        if self.finished:
            verified = " · remediation verified" if self.verified else ""
            return f"session finished · {done} steps done{verified}"
        step = self.current
        index = [s.id for s in self.playbook.steps].index(step.id) + 1 if step else 0
        label = f"{step.kind}: {step.title}" if step else ""
        verifying = f" · verifies {self.verifying[step.id]}" if step and step.id in self.verifying else ""
        return f"step {index} of {total} · {done} done · {label}{verifying}"

    def record_of(self, step_id: str) -> StepRecord | None:
        return self.records.get(step_id)

    def command_of(self, step: Step, which: str = "command") -> tuple[str, ...]:
        return fill(getattr(step, which), self.values)

    def missing_values(self, step: Step | None = None) -> list[str]:
        """Return the placeholders of a step's command, dry run and rollback that have no value yet."""
        step = step or self.current
        if step is None:
            return []
        names = placeholders_in([*step.command, *step.dry_run, *step.rollback])
        return [name for name in names if name not in self.values]

    def set_value(self, name: str, value: str) -> None:
        """Record the engineer's value for a placeholder."""
        if name not in PLACEHOLDERS:
            raise SessionError(f"unknown placeholder {name!r}")
        if not value.strip():
            raise SessionError(f"the value of {{{name}}} is empty; type the {name.replace('_', ' ')}")
        self.journal.append(journal_kinds.ANSWER, {"step": self.path[-1] if self.path else None,
                                                   "placeholder": name, "value": value.strip()},
                            actor=self.actor)
        self.values[name] = value.strip()

    # --- acting on the current step ---

    def run_check(self, runner: CommandRunner, *, timeout: float | None = None,
                  on_output: Callable[[str], None] | None = None) -> StepRecord:
        """Run the current check step's command and record passed, failed or could not run."""
        step = self._expect("check")
        if not step.command:
            return self._record(step, SHOWN, "no command: read what to look for")
        missing = self.missing_values(step)
        if missing:
            raise SessionError(f"step {step.id} needs a value for {', '.join('{' + m + '}' for m in missing)}")

        result = self._run(runner, step, self.command_of(step), "check", allow_mutation=False,
                           timeout=timeout, on_output=on_output)
        if result.ok:
            status = PASSED
        elif result.status == ProbeStatus.FAILED.value:
            status = FAILED
        else:
            status = COULD_NOT_RUN
        record = self._record(step, status, result.reason, [result])
        remediation = self.verifying.get(step.id)
        if remediation and status == PASSED:
            self.verified.append(remediation)
            self.journal.append(journal_kinds.MILESTONE, {"verified": remediation, "by": step.id},
                                actor=self.actor)
        return record

    def judge(self, looks_right: bool) -> StepRecord:
        """Record the engineer's reading of a check's output, which overrides the exit status.

        An exit status of 0 only shows that the command ran without error, because
        an empty endpoint list also exits 0. For a verify step, "looks right" verifies the
        remediation and "shows the problem" withdraws the verification.
        """
        step = self._expect("check")
        earlier = self.records.get(step.id)
        commands = earlier.commands if earlier else []
        result = PASSED if looks_right else FAILED
        reason = ("the engineer read the output: it looks right" if looks_right
                  else "the engineer read the output: it shows the problem")
        record = self._record(step, result, reason, commands)
        remediation = self.verifying.get(step.id)
        if remediation and looks_right and remediation not in self.verified:
            self.verified.append(remediation)
            self.journal.append(journal_kinds.MILESTONE, {"verified": remediation, "by": step.id},
                                actor=self.actor)
        elif remediation and not looks_right and remediation in self.verified:
            self.verified.remove(remediation)
            self.journal.append(journal_kinds.MILESTONE, {"verification_withdrawn": remediation,
                                                          "by": step.id}, actor=self.actor)
        return record

    def mark_shown(self) -> StepRecord:
        """Record that the engineer read a check step without running its command."""
        step = self._expect("check")
        return self._record(step, SHOWN, "shown, not run")

    def read_note(self) -> StepRecord:
        step = self._expect("note")
        return self._record(step, READ)

    def answer(self, label: str) -> StepRecord:
        """Record the answer to the current question; `advance` then follows its branch."""
        step = self._expect("ask")
        if label not in [answer.label for answer in step.answers]:
            raise SessionError(f"{label!r} is not an answer of step {step.id}; choose one of "
                               + ", ".join(answer.label for answer in step.answers))
        self.journal.append(journal_kinds.ANSWER, {"step": step.id, "answer": label}, actor=self.actor)
        return self._record(step, ANSWERED, answer=label)

    def skip_remediation(self, reason: str = "the engineer chose not to run it") -> StepRecord:
        step = self._expect("remediate")
        return self._record(step, SKIPPED, reason)

    def plan_remediation(self, runner: CommandRunner, *, timeout: float | None = None) -> RemediationPlan:
        """Run the dry run (and, for kubectl changes, read the current object) for the dialog."""
        step = self._expect("remediate")
        if self.read_only:
            self._record(step, REFUSED, "read-only session: mutating steps are refused")
            raise MutationRefused("this session is read-only (--read-only); the remediation is shown, "
                                  "not run")
        missing = self.missing_values(step)
        if missing:
            raise SessionError(f"step {step.id} needs a value for {', '.join('{' + m + '}' for m in missing)}")

        command = self.command_of(step)
        dry_run = self._run(runner, step, self.command_of(step, "dry_run"), "dry_run",
                            allow_mutation=False, timeout=timeout)
        diff = ""
        resource = resource_name(command)
        current_argv = current_state_argv(command)
        if current_argv is not None and dry_run.ok:
            before = self._run(runner, step, current_argv, "current_state", allow_mutation=False,
                               timeout=timeout)
            if before.ok:
                diff = unified_diff(before.output, dry_run.output, resource)
        return RemediationPlan(step.id, step.title, command, dry_run.argv, self.command_of(step, "rollback"),
                               step.verify, resource, self.context, self.production, dry_run, diff)

    def check_context(self, now: KubeContext) -> bool:
        """Compare the kube context now with the confirmed one; a change stops mutations."""
        if now.context == self.context.context:
            return True
        if self.context_changed_to is None or self.context_changed_to.context != now.context:
            self.context_changed_to = now
            self.journal.append(journal_kinds.NOTE, {
                "context_changed": {"from": self.context.context, "to": now.context}}, actor="mesh-doctor")
        return False

    def accept_context(self, now: KubeContext) -> None:
        """Record that the engineer confirmed the new kube context; mutations may run there again."""
        self.journal.append(journal_kinds.CONFIRMATION, {
            "action": "context", "context": now.context, "cluster": now.cluster,
            "namespace": now.namespace, "previous": self.context.context}, actor=self.actor)
        self.context = now
        self.context_changed_to = None

    def confirm(self, plan: RemediationPlan, *, typed_name: str = "", action: str = "apply",
                context_now: KubeContext | None = None) -> Confirmation:
        """Record the engineer's confirmation of `plan`; raises `MutationRefused` when it may not run."""
        if self.read_only:
            raise MutationRefused("this session is read-only (--read-only); no command that changes "
                                  "state runs")
        if context_now is not None and not self.check_context(context_now):
            raise MutationRefused(f"the kube context changed from {self.context.context!r} to "
                                  f"{context_now.context!r}; confirm the new context first")
        if self.context_changed_to is not None:
            raise MutationRefused("the kube context changed; confirm the new context first")
        if plan.production and typed_name.strip() != plan.resource:
            raise MutationRefused(f"{self.context.context} is a production context: type "
                                  f"{plan.resource!r} to confirm")
        argv = plan.command if action == "apply" else plan.rollback
        self.journal.append(journal_kinds.CONFIRMATION, {
            "action": action, "step": plan.step_id, "argv": list(argv),
            "dry_run": list(plan.dry_run),
            "dry_run_status": plan.dry_run_result.status if plan.dry_run_result else None,
            "rollback": list(plan.rollback), "context": self.context.context,
            "production": plan.production, "typed_name": typed_name or None}, actor=self.actor)
        return Confirmation(plan.step_id, tuple(argv), self.context.context, action)

    def run_remediation(self, runner: CommandRunner, confirmation: Confirmation, *,
                        context_now: KubeContext | None = None, timeout: float | None = None,
                        on_output: Callable[[str], None] | None = None) -> StepRecord:
        """Run the confirmed command (or its rollback) with mutation allowed; `advance` then goes to the verify step."""
        step = self._expect("remediate")
        if self.read_only:
            raise MutationRefused("this session is read-only (--read-only)")
        if confirmation.step_id != step.id:
            raise MutationRefused(f"the confirmation is for step {confirmation.step_id}, not {step.id}")
        expected = self.command_of(step) if confirmation.action == "apply" else self.command_of(step, "rollback")
        if confirmation.argv != expected:
            raise MutationRefused("the confirmed command differs from the step's command; confirm again")
        if context_now is not None and not self.check_context(context_now):
            raise MutationRefused(f"the kube context changed to {context_now.context!r}; confirm it first")
        if confirmation.context != self.context.context or self.context_changed_to is not None:
            raise MutationRefused("the confirmation was given in another kube context; confirm again")

        result = self._run(runner, step, confirmation.argv, confirmation.action, allow_mutation=True,
                           timeout=timeout, on_output=on_output)
        if confirmation.action == "rollback":
            return self._record(step, ROLLED_BACK if result.ok else FAILED, result.reason, [result])
        return self._record(step, APPLIED if result.ok else FAILED, result.reason, [result])

    # --- moving ---

    def next_step_id(self) -> str | None:
        """Return the step the current one leads to, once it has a result."""
        step = self.current
        if step is None:
            return None
        record = self.records.get(step.id)
        if record is None:
            raise SessionError(f"step {step.id} has no result yet")
        if step.kind == "ask":
            return next(answer.next for answer in step.answers if answer.label == record.answer)
        if step.kind == "remediate" and record.result == APPLIED:
            return step.verify
        if step.id in self.verifying:
            remediation = self.playbook.step(self.verifying[step.id])
            if record.result != PASSED:
                return remediation.id if remediation else None  # back to the change: retry or roll back
            return remediation.next if remediation else None
        if step.next:
            return step.next
        ids = [s.id for s in self.playbook.steps]
        index = ids.index(step.id)
        return ids[index + 1] if index + 1 < len(ids) else None

    def advance(self) -> Step | None:
        """Move to the next step; end the session when there is none."""
        target = self.next_step_id()
        step = self.current
        if target is None:
            self.finish()
            return None
        verifies = step.id if step is not None and step.kind == "remediate" and \
            self.records[step.id].result == APPLIED else None
        self._enter(target, verifies=verifies)
        return self.current

    def back(self) -> Step | None:
        """Return to the previous step; its earlier result stays in the journal and is asked for again."""
        if len(self.path) < 2:
            return self.current
        previous = self.path[-2]
        self.journal.append(journal_kinds.STEP_STARTED,
                            {"step": previous, "back": True, "depth": len(self.path) - 1}, actor=self.actor)
        del self.path[-1]
        self.records.pop(previous, None)
        self.finished = False
        return self.current

    def finish(self, reason: str = "") -> None:
        if self.finished:
            return
        self.journal.append(journal_kinds.SESSION_ENDED, {
            "verified": list(self.verified), "steps": len(self.records),
            "reason": reason or ("remediation verified" if self.verified else "playbook finished")},
            actor=self.actor)
        self.finished = True

    # --- internals ---

    def _expect(self, kind: str) -> Step:
        step = self.current
        if step is None:
            raise SessionError("the session has finished")
        if step.kind != kind:
            raise SessionError(f"step {step.id} is a {step.kind} step, not a {kind} step")
        return step

    def _enter(self, step_id: str, *, verifies: str | None = None) -> None:
        data: dict[str, Any] = {"step": step_id}
        if verifies:
            data["verifies"] = verifies
            self.verifying[step_id] = verifies
        self.journal.append(journal_kinds.STEP_STARTED, data, actor=self.actor)
        self.path.append(step_id)
        self.records.pop(step_id, None)

    def _run(self, runner: CommandRunner, step: Step, argv: Sequence[str], role: str, *,
             allow_mutation: bool, timeout: float | None,
             on_output: Callable[[str], None] | None = None) -> CommandResult:
        extra = {"on_output": on_output} if on_output is not None else {}
        try:
            observation = runner.run(list(argv), probe_id=f"playbook.{self.playbook.id}.{step.id}.{role}",
                                     timeout=timeout, allow_mutation=allow_mutation,
                                     target=self.context.context or "", **extra)
        except (RuntimeError, ValueError) as error:
            # MutatingCommandError (a RuntimeError) for a check that would change state.
            result = CommandResult(tuple(argv), ProbeStatus.UNAVAILABLE.value, None, "", str(error))
        else:
            result = CommandResult(tuple(observation.argv), observation.status.value,
                                   observation.exit_status, observation.output, observation.reason)
        encoded = result.output.encode("utf-8", "replace")
        self.journal.append(journal_kinds.COMMAND, {
            "step": step.id, "role": role, "argv": list(result.argv), "status": result.status,
            "exit_status": result.exit_status, "reason": result.reason,
            "output_sha256": hashlib.sha256(encoded).hexdigest(), "output_bytes": len(encoded),
            "allow_mutation": allow_mutation,
        }, actor="mesh-doctor")
        return result

    def _record(self, step: Step, result: str, reason: str = "", commands: list[CommandResult] | None = None,
                *, answer: str | None = None) -> StepRecord:
        record = StepRecord(step.id, result, reason, list(commands or []), answer)
        self.journal.append(journal_kinds.STEP_RESULT, {
            "step": step.id, "kind": step.kind, "result": result, "reason": reason, "answer": answer,
            "commands": [{"argv": list(c.argv), "status": c.status, "exit_status": c.exit_status,
                          "reason": c.reason, "excerpt": c.output[-OUTPUT_EXCERPT_CHARS:]}
                         for c in record.commands],
        }, actor=self.actor)
        self.records[step.id] = record
        return record


def session_summary(path: Path) -> dict[str, Any]:
    """Summarize one journal for `mesh-doctor sessions`: playbook, cause, state, last step, problems."""
    read = read_journal(path)
    summary: dict[str, Any] = {"id": path.parent.name, "path": str(path), "playbook": None, "cause": None,
                               "started": None, "updated": None, "state": "open", "step": None,
                               "verified": False, "context": None, "problems": len(read.problems)}
    for entry in read.entries:
        summary["updated"] = entry.at
        if entry.kind == journal_kinds.SESSION_STARTED:
            summary["playbook"] = entry.data.get("playbook")
            summary["started"] = entry.at
            summary["context"] = entry.data.get("context")
        elif entry.kind == journal_kinds.FINDING:
            summary["cause"] = entry.data.get("cause_id")
        elif entry.kind == journal_kinds.STEP_STARTED:
            summary["step"] = entry.data.get("step")
        elif entry.kind == journal_kinds.MILESTONE and entry.data.get("verified"):
            summary["verified"] = True
        elif entry.kind == journal_kinds.MILESTONE and entry.data.get("verification_withdrawn"):
            summary["verified"] = False
        elif entry.kind == journal_kinds.SESSION_ENDED:
            summary["state"] = "finished"
    if summary["playbook"] is None:
        summary["state"] = "unreadable"
    return summary
