"""The Mesh Doctor app: one factory, the scan and export workers, and the app-wide keys.

`build_app` is the only way the CLI and the tests build the app. The app
starts the scan in a worker thread as soon as it mounts, so the first screen
appears at once and fills in when the `ScanCompleted` message arrives. Every
worker failure ends in `on_work_failed`, which shows an error dialog.
"""

from __future__ import annotations

import getpass
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from doctor.diagnosis import Diagnosis, Finding
from doctor.facts import FactSet
from doctor.journal import Journal, new_session_id
from doctor.model import ProbeStatus
from doctor.lab.sessions import playbooks_for
from doctor.playbooks import Playbook, load_playbooks
from doctor.rules import RuleLoadError
from doctor.tui import formatting
from doctor.session import (
    KubeContext, Session, SessionError, current_kube_context, values_from_facts,
)
from doctor.tui.messages import (
    CollectionEnded, CollectionProgress, ReportExported, ScanCompleted, SessionOpened, SummaryReady, SymptomRejected, WorkFailed,
)
from doctor.tui.screens.base import DoctorScreen
from doctor.tui.screens.collection import CollectionScreen
from doctor.tui.screens.dialogs import ErrorDialog, HelpScreen
from doctor.tui.screens.export import ExportScreen
from doctor.tui.screens.session import SessionScreen
from doctor.tui.screens.symptom import SymptomForm, SymptomRequest
from doctor.tui.screens.triage import TriageScreen

if TYPE_CHECKING:
    from doctor.logstats import LogSummary

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

NAVIGATION_KEYS = (
    ("↑ ↓ pgup pgdn home end", "Move the cursor"),
    ("enter", "Open the selected row"),
)


@dataclass
class SessionOptions:
    """Settings of guided sessions: the journal folder, the runner and the production contexts.

    `values` adds placeholder values the evidence cannot give (the mesh lab's
    ports). `playbooks_dir` replaces the shipped playbooks. `resume` is the id
    of a session to open at start, and `new_id` makes the id of a new one.
    With `symptom_form` and no paths, the app opens the symptom form and
    collects evidence live through `kubeconfig` (None: $KUBECONFIG).
    `read_context` returns the kube context that mutations would go to, and
    the session compares it before each change.
    """

    journal_root: Path | None = None
    runner: Any = None
    read_context: Callable[[], KubeContext] = current_kube_context
    production_contexts: tuple[str, ...] = ()
    values: dict[str, str] = field(default_factory=dict)
    playbooks_dir: Path | None = None
    resume: str | None = None
    new_id: Callable[[], str] = new_session_id
    kubeconfig: str | None = None
    symptom_form: bool = False


def build_app(
    paths: Sequence[Path],
    *,
    read_only: bool = True,
    export_dir: Path | None = None,
    clock: Clock | None = None,
    sessions: SessionOptions | None = None,
) -> MeshDoctorApp:
    """Build the app that scans `paths` and shows the diagnosis.

    `export_dir` is where `e` writes the incident summary (default: the current
    folder). `clock` returns the time used for the report's name and the
    diagnosis timestamp, and tests pass a fixed one. `read_only` rejects every
    mutating playbook step. `sessions` configures guided sessions.
    """
    return MeshDoctorApp(
        [Path(path) for path in paths],
        read_only=read_only,
        export_dir=export_dir if export_dir is not None else Path.cwd(),
        clock=clock or _local_now,
        sessions=sessions or SessionOptions(),
    )


def _default_runner():
    from doctor.runner import Runner

    return Runner.from_environment()


def engineer_name() -> str:
    """Return the login name the journal records as the actor of each answer and confirmation."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER variable
        return "engineer"


@dataclass(frozen=True)
class LiveOutcome:
    """Result of a live collection from the symptom form: the diagnosis, its facts and how it ended."""

    diagnosis: Diagnosis
    facts: FactSet
    cancelled: bool = False
    not_run: int = 0
    cancelled_running: int = 0


def collect_live(request: SymptomRequest, kubeconfig: str | None, now: datetime, *,
                 progress: Callable[[Any], None] | None = None,
                 cancel: threading.Event | None = None) -> LiveOutcome:
    """Collect the evidence `request` needs from the cluster (read-only) and diagnose it.

    `progress` receives each `doctor.live.collect.Progress`; setting `cancel`
    stops the collection, and the diagnosis uses what it collected so far.
    """
    from doctor.engine import diagnose
    from doctor.live.cli_options import context_namespace
    from doctor.live.collect import CANCELLED_REASON, Collector
    from doctor.live.context import LiveOptions, ProbeContext
    from doctor.live.registry import default_probes
    from doctor.readers import read_documents
    from doctor.scan import load_engine

    engine = load_engine()
    options = LiveOptions(kubeconfig=kubeconfig,
                          namespaces=(request.namespace,) if request.namespace else (),
                          symptom=request.symptom, source_workload=request.caller or None,
                          destination_service=request.callee or None, log_since=request.since)
    context = ProbeContext.build(options)
    try:
        collector = Collector(context, default_probes(), engine.rulebook, progress=progress, cancel=cancel)
        result = collector.collect(request.namespace or context_namespace(options), capture_possible=False)
    finally:
        context.close()
    read = read_documents(result.documents(), engine.rulebook.signatures)
    diagnosis = diagnose(read.facts, engine.rulebook, engine.registry, result.observations, now=now)
    diagnosis.inputs = list(read.inputs)
    abandoned = sum(1 for observation in result.observations if observation.reason == CANCELLED_REASON)
    return LiveOutcome(diagnosis, read.facts, result.cancelled, len(result.not_run()), abandoned)


def progress_message(progress: Any, failures: dict[str, int]) -> CollectionProgress:
    """Turn one collector `Progress` into a message, counting its observation into `failures`."""
    observation = progress.observation
    if observation.status is not ProbeStatus.OK:
        failures[observation.status.value] = failures.get(observation.status.value, 0) + 1
    finished = f"{observation.probe_id} on {observation.target}" if observation.target else observation.probe_id
    return CollectionProgress(progress.done, progress.total, progress.wave, finished, progress.running,
                              dict(failures))


def _local_now() -> datetime:
    return datetime.now().astimezone()


def _scan_with_shipped_rules(paths: list[Path], now: datetime) -> tuple[Diagnosis, FactSet]:
    # Imported here so the first screen shows before the engine, the rules and
    # every parser have loaded.
    from doctor.scan import scan_paths_with_facts

    return scan_paths_with_facts(paths, now=now)


def access_log_summary(facts: FactSet) -> LogSummary | None:
    """Summarize the access-log entries among `facts` per minute, or None when there are none."""
    from doctor.logstats import summarize_entries
    from doctor.parsers.accesslog import AccessLogEntry

    entries = facts.of(AccessLogEntry)
    if not entries:
        return None
    return summarize_entries(entries)


class MeshDoctorApp(App[None]):
    """Triage of the evidence in the given paths; every key only reads."""

    TITLE = "Mesh Doctor"
    CSS_PATH = "app.tcss"

    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("e", "export", "Export"),
        Binding("colon", "command_palette", "Command palette", show=False, key_display=": ^p"),
    ]

    def __init__(
        self,
        paths: list[Path],
        *,
        read_only: bool,
        export_dir: Path,
        clock: Clock,
        sessions: SessionOptions,
    ) -> None:
        super().__init__()
        self.paths = paths
        # The guided session screen refuses every mutating step when read_only is set.
        self.read_only = read_only
        self.session_options = sessions
        self.export_dir = export_dir
        self.clock = clock
        self.diagnosis: Diagnosis | None = None
        # The facts of the last scan or live collection, for the values of a guided session.
        self.facts: FactSet | None = None
        self.symptom: SymptomRequest | None = None
        # How the last live collection from the symptom form ended.
        self.collection_ended: CollectionEnded | None = None
        # The journal of the last guided session opened; `e` summarises it when set.
        self.session_journal: Path | None = None
        self.playbooks: dict[str, Playbook] = {}
        self.playbook_error: str | None = None
        self.triage = TriageScreen(paths)
        if read_only:
            self.title = f"{self.TITLE} · read-only"

    def get_default_screen(self) -> Screen:
        return self.triage

    def on_mount(self) -> None:
        if not self.paths and self.session_options.symptom_form:
            self.action_symptom_form()
        else:
            self._scan(self.paths, self.clock())
        if self.session_options.resume:
            self._resume(self.session_options.resume)

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def _scan(self, paths: list[Path], now: datetime) -> None:
        named = ", ".join(str(path) for path in paths)
        try:
            diagnosis, facts = _scan_with_shipped_rules(paths, now)
            log_summary = access_log_summary(facts)
        except RuleLoadError as error:
            logger.error("the rule files are invalid: %s", error)
            self.post_message(WorkFailed("The rule files are invalid", str(error)))
            return
        except Exception as error:  # shown in the dialog; the traceback goes to the log
            logger.exception("scanning %s failed", named)
            self.post_message(WorkFailed("Scan failed", f"Scanning {named} failed: {error!r}"))
            return

        playbooks: dict[str, Playbook] = {}
        playbook_error = None
        try:
            playbooks = playbooks_for(paths, self.session_options.playbooks_dir)
        except (RuleLoadError, OSError) as error:
            logger.warning("playbooks could not be loaded: %s", error)
            playbook_error = str(error)
        self.post_message(ScanCompleted(diagnosis, playbooks, playbook_error, log_summary, facts))

    def on_scan_completed(self, message: ScanCompleted) -> None:
        self.diagnosis = message.diagnosis
        self.facts = message.facts
        self.playbooks = message.playbooks
        self.playbook_error = message.playbook_error
        self.triage.show_diagnosis(message.diagnosis, message.playbooks, message.playbook_error,
                                   log_summary=message.log_summary)
        if message.playbook_error:
            self.notify("Playbooks could not be loaded; findings show their remediation text only.",
                        title="Playbooks", severity="warning")

    # --- starting from a symptom ---

    def action_symptom_form(self, error: str = "") -> None:
        """Ask what fails, then collect the evidence that symptom needs from the cluster."""
        label = self.session_options.read_context().label

        def submitted(request: SymptomRequest | None) -> None:
            if request is None:
                self.notify("No evidence collected; open the form again from the command palette.",
                            title="Symptom", severity="warning")
                return
            self.symptom = request
            cancel = threading.Event()
            self.push_screen(CollectionScreen(request.symptom, cancel))
            self._collect(request, self.clock(), cancel)

        self.push_screen(SymptomForm(label, error=error), submitted)

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def _collect(self, request: SymptomRequest, now: datetime, cancel: threading.Event) -> None:
        failures: dict[str, int] = {}
        try:
            outcome = collect_live(request, self.session_options.kubeconfig, now, cancel=cancel,
                                   progress=lambda progress: self.post_message(progress_message(progress, failures)))
        except ValueError as error:  # ScopeError: an unknown symptom or scope
            self.post_message(CollectionEnded(cancel.is_set(), 0, 0))
            self.post_message(SymptomRejected(str(error)))
            return
        except RuleLoadError as error:
            self.post_message(CollectionEnded(cancel.is_set(), 0, 0))
            self.post_message(WorkFailed("The rule files are invalid", str(error)))
            return
        except Exception as error:  # shown in the dialog; the traceback goes to the log
            logger.exception("the live collection for %s failed", request.symptom)
            self.post_message(CollectionEnded(cancel.is_set(), 0, 0))
            self.post_message(WorkFailed("Live collection failed", f"Collecting evidence failed: {error!r}"))
            return

        self.post_message(CollectionEnded(outcome.cancelled, outcome.not_run, outcome.cancelled_running))
        diagnosis, facts = outcome.diagnosis, outcome.facts
        playbooks: dict[str, Playbook] = {}
        playbook_error = None
        try:
            playbooks = load_playbooks(self.session_options.playbooks_dir)
        except (RuleLoadError, OSError) as error:
            playbook_error = str(error)
        self.post_message(ScanCompleted(diagnosis, playbooks, playbook_error, access_log_summary(facts),
                                        facts))

    def on_collection_progress(self, message: CollectionProgress) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, CollectionScreen):
                screen.show_progress(message)

    def on_collection_ended(self, message: CollectionEnded) -> None:
        self.collection_ended = message
        # The help dialog may be open over the progress dialog; both close.
        if any(isinstance(screen, CollectionScreen) for screen in self.screen_stack):
            while not isinstance(self.screen, CollectionScreen):
                self.pop_screen()
            self.pop_screen()
        if message.cancelled:
            self.notify(f"Collection cancelled: {message.not_run} probes not run, "
                        f"{message.cancelled_running} abandoned while running; the findings use what was "
                        "collected.", title="Live collection", severity="warning")

    def on_symptom_rejected(self, message: SymptomRejected) -> None:
        self.action_symptom_form(message.reason)

    # --- guided sessions ---

    def start_session(self, finding: Finding) -> None:
        """Open a guided session on the playbook of `finding`, in a worker that reads its values."""
        playbook = self.playbooks.get(finding.playbook or "")
        if playbook is None:
            self.notify(f"No playbook {finding.playbook!r} is loaded for {finding.cause_id}.",
                        title="Session", severity="warning")
            return
        self._open_session(finding, playbook)

    @work(thread=True, exclusive=True, group="session-start", exit_on_error=False)
    def _open_session(self, finding: Finding, playbook: Playbook) -> None:
        options = self.session_options
        try:
            values = values_from_facts(finding, self.facts) if self.facts is not None else {}
            values.update(options.values)
            journal = Journal.for_session(options.new_id(), options.journal_root)
            session = Session.start(playbook, journal, finding=finding,
                                    paths=[str(path) for path in self.paths], values=values,
                                    read_only=self.read_only, context=options.read_context(),
                                    production_contexts=options.production_contexts,
                                    symptom=self.symptom.as_journal_data() if self.symptom else None,
                                    actor=engineer_name())
        except OSError as error:
            logger.warning("the session journal could not be written: %s", error)
            self.post_message(WorkFailed("Session not started",
                                         f"The session journal could not be written: {error}. "
                                         "Set XDG_STATE_HOME to a folder you can write to."))
            return
        self.post_message(SessionOpened(session))

    def _resume(self, session_id: str) -> None:
        options = self.session_options
        journal = Journal.for_session(session_id, options.journal_root)
        try:
            playbooks = playbooks_for(self.paths, options.playbooks_dir)
            session = Session.resume(journal, playbooks, read_only=True if self.read_only else None,
                                     context=options.read_context(),
                                     production_contexts=options.production_contexts,
                                     actor=engineer_name())
        except (RuleLoadError, SessionError, OSError) as error:
            self.push_screen(ErrorDialog("Session not resumed", str(error)))
            return
        for problem in session.problems:
            self.notify(f"{problem.source}:{problem.line}: {problem.message}", title="Journal",
                        severity="warning")
        self.post_message(SessionOpened(session))

    def on_session_opened(self, message: SessionOpened) -> None:
        self.session_journal = message.session.journal.path
        options = self.session_options
        runner = options.runner if options.runner is not None else _default_runner()
        self.push_screen(SessionScreen(message.session, runner, options.read_context))

    def on_work_failed(self, message: WorkFailed) -> None:
        self.push_screen(ErrorDialog(message.title, message.message))

    def action_export(self) -> None:
        if isinstance(self.screen, ExportScreen):
            return
        if self.diagnosis is None:
            self.notify("The scan is still running; export once the findings appear.",
                        severity="warning")
            return
        self._prepare_export(self.paths, self.session_journal, self.clock())

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _prepare_export(self, paths: list[Path], journal: Path | None, moment: datetime) -> None:
        from doctor.summary import summary_from_journal, summary_from_scan

        try:
            if journal is not None:
                summary = summary_from_journal(journal, now=moment)
            else:
                summary = summary_from_scan(paths, now=moment)
            data = summary.to_dict()
        except Exception as error:  # shown in the dialog; the traceback goes to the log
            logger.exception("building the incident summary failed")
            self.post_message(WorkFailed("Export failed",
                                         f"Building the incident summary failed: {error!r}"))
            return
        self.post_message(SummaryReady(data, moment))

    def on_summary_ready(self, message: SummaryReady) -> None:
        def write(output_format: str | None) -> None:
            if output_format is not None:
                self._export(message.data, output_format, self.export_dir, message.moment)

        self.push_screen(ExportScreen(message.data, str(self.export_dir)), write)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _export(self, data: dict, output_format: str, directory: Path, moment: datetime) -> None:
        from doctor.summary_render import SUFFIXES, render

        try:
            text = render(data, output_format)
            name = formatting.report_file_name(moment, SUFFIXES[output_format])
            path = write_new_file(directory, name, text)
        except OSError as error:
            reason = error.strerror or str(error)
            logger.warning("writing the report in %s failed: %s", directory, reason)
            self.post_message(WorkFailed(
                "Export failed",
                f"Could not write the report in {directory}: {reason}. "
                "Start mesh-doctor from a folder you can write to.",
            ))
            return
        except Exception as error:  # shown in the dialog; the traceback goes to the log
            logger.exception("exporting the report to %s failed", directory)
            self.post_message(WorkFailed("Export failed", f"Rendering the report failed: {error!r}"))
            return
        self.post_message(ReportExported(path))

    def on_report_exported(self, message: ReportExported) -> None:
        self.notify(f"Report written to {message.path}", title="Exported")

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        name = getattr(screen, "SCREEN_NAME", type(screen).__name__)
        note = getattr(screen, "HELP_NOTE", None)
        if note:
            self.push_screen(HelpScreen(name, self._help_rows(screen), note=note))
        else:
            self.push_screen(HelpScreen(name, self._help_rows(screen)))

    def _help_rows(self, screen: Screen) -> list[tuple[str, str]]:
        """List the keys of `screen` and of the app, then the navigation keys of the widgets."""
        keys_by_action: dict[str, list[str]] = {}
        descriptions: dict[str, str] = {}
        for active in screen.active_bindings.values():
            binding = active.binding
            if active.node is not screen and active.node is not self:
                continue
            if not binding.description or not active.enabled:
                continue
            keys_by_action.setdefault(binding.action, []).append(self.get_key_display(binding))
            descriptions.setdefault(binding.action, binding.description)

        rows = [(" ".join(keys), descriptions[action]) for action, keys in keys_by_action.items()]
        rows.extend(NAVIGATION_KEYS)
        return rows

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Export report", "Preview the incident summary and write it as "
                            "Markdown, JSON or HTML",
                            self.action_export)
        yield SystemCommand("Help", "List the keys of this screen", self.action_help)
        yield SystemCommand("Start from a symptom",
                            "Describe what fails and collect its evidence from the cluster",
                            self.action_symptom_form)
        if isinstance(screen, DoctorScreen):
            if screen.check_action("filter", ()):
                yield SystemCommand("Filter", "Filter the rows of this screen", screen.action_filter)
            if len(self.screen_stack) > 1:
                yield SystemCommand("Back", "Return to the previous screen", screen.action_back)
        if isinstance(screen, TriageScreen) and self.diagnosis is not None:
            yield SystemCommand("Coverage", "List the checks that could not run",
                                screen.action_coverage)
            yield SystemCommand("Parse problems", "List parse problems and skipped inputs",
                                screen.action_problems)
            yield SystemCommand("Inputs", "Browse every input file with line numbers",
                                screen.action_inputs)


def write_new_file(directory: Path, name: str, text: str) -> Path:
    """Write `text` to a new file in `directory`, adding -2, -3 … to `name` rather than overwrite."""
    stem, suffix = Path(name).stem, Path(name).suffix
    for attempt in range(1, 100):
        candidate = directory / (name if attempt == 1 else f"{stem}-{attempt}{suffix}")
        try:
            with candidate.open("x", encoding="utf-8") as stream:
                stream.write(text)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{directory / name} and 98 numbered variants already exist")
