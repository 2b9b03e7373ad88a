"""The guided session screen: one playbook step at a time, its command, output and result.

The screen shows the kube context at the top (in the warning colour for a
production context), a progress line, the current step with the exact
command it runs, and the command's output. Commands run in a worker thread
through the session, which writes each result to the journal before the
worker posts `StepFinished`. Only then does the screen move on.

Keys: `r` runs the check, `m` marks a check as read without running it,
`p` and `f` record whether its output looks right or shows the problem,
`1`-`9` answer a question, `a` prepares a remediation (dry run, then the
confirmation dialog), `u` rolls an applied one back, `k` skips it, `n` goes
to the next step, `b` back to the previous one, `c` accepts a changed kube
context. No single key runs a mutating command: `a` only opens the dialog,
whose Cancel button has the focus.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Header, Input, RichLog, Static

from doctor.redact import redact_text
from doctor.session import (
    ANSWERED, APPLIED, FAILED, PASSED, READ, ROLLED_BACK, KubeContext, MutationRefused,
    RemediationPlan, Session, SessionError, StepRecord,
)
from doctor.tui.formatting import command_line
from doctor.tui.messages import WorkFailed
from doctor.tui.screens.base import DoctorScreen
from doctor.tui.screens.confirm import ConfirmChange, ConfirmContext

logger = logging.getLogger(__name__)

RESULT_STYLES = {
    PASSED: "bold green", APPLIED: "bold green", READ: "dim", ANSWERED: "cyan",
    FAILED: "bold red", ROLLED_BACK: "yellow", "could_not_run": "bold yellow",
    "refused": "bold yellow", "skipped": "dim", "shown": "dim",
}
ContextReader = Callable[[], KubeContext]
CONTEXT_POLL_S = 5.0


@dataclass
class StepFinished(Message):
    """Notice that a step's command ran and its result is in the journal."""

    record: StepRecord


@dataclass
class PlanReady(Message):
    """Notice that the dry run of a remediation ran, so the confirmation dialog can open."""

    plan: RemediationPlan
    action: str


@dataclass
class ContextChanged(Message):
    """The kube context differs from the one the session confirmed."""

    now: KubeContext


@dataclass
class ActionRefused(Message):
    """Refusal of an action by the session (read-only, missing value, context), with the reason to show."""

    reason: str


class SessionScreen(DoctorScreen):
    """Walk the playbook of one finding with the engineer."""

    SCREEN_NAME = "Guided session"
    HELP_NOTE = ("Checks only read. A change runs only after its dialog: a, then the button "
                 "under the dry run, diff and rollback. esc closes this help.")

    BINDINGS = [
        Binding("r", "run", "Run"),
        Binding("m", "mark_shown", "Mark read"),
        Binding("p", "judge(True)", "Looks right"),
        Binding("f", "judge(False)", "Shows the problem"),
        Binding("a", "apply", "Apply…"),
        Binding("u", "rollback", "Roll back…"),
        Binding("k", "skip", "Skip"),
        Binding("n", "next", "Next"),
        Binding("b", "previous", "Previous step"),
        Binding("c", "accept_context", "Accept context", show=False),
        *[Binding(str(number), f"answer({number})", f"Answer {number}", show=False)
          for number in range(1, 10)],
    ]

    def __init__(self, session: Session, runner, read_context: ContextReader) -> None:
        super().__init__()
        self.session = session
        self.runner = runner
        self.read_context = read_context
        self.busy = False
        self.pending_context: KubeContext | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="session-context")
        yield Static(id="session-progress")
        with VerticalScroll(id="session-step"):
            yield Static(id="step-title")
            yield Static(id="step-body")
            yield Static(id="step-result")
        yield Input(id="step-value")
        # RichLog renders at least 78 cells wide by default; wrap to the real width instead.
        yield RichLog(id="step-output", wrap=True, markup=False, highlight=False, min_width=20)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"session {self.session.session_id}"
        self.refresh_step()
        self.set_interval(CONTEXT_POLL_S, self._poll_context)

    def _poll_context(self) -> None:
        """Show a kube context change as soon as the kubeconfig reports it, not only at the next change."""
        if self.busy or self.session.finished:
            return
        now = self.read_context()
        changed_before = self.session.context_changed_to
        if not self.session.check_context(now) and self.session.context_changed_to != changed_before:
            self.notify(f"The kube context changed to {now.context}; mutations stop until you accept it (c).",
                        title="Kube context", severity="warning")
            self.refresh_step()

    # --- rendering ---

    def refresh_step(self) -> None:
        session = self.session
        context = self.query_one("#session-context", Static)
        context.update(self._context_text())
        context.set_class(session.production, "-production")
        context.set_class(session.context_changed_to is not None, "-changed")
        self.query_one("#session-progress", Static).update(session.progress())

        step = session.current
        title = self.query_one("#step-title", Static)
        body = self.query_one("#step-body", Static)
        result = self.query_one("#step-result", Static)
        value_input = self.query_one("#step-value", Input)
        if step is None:
            title.update(Text("The session has finished.", style="bold"))
            verified = ", ".join(session.verified)
            body.update(Text(f"Remediation verified: {verified}." if verified else
                             "No remediation was verified in this session.",
                             style="green" if verified else "yellow"))
            result.update(Text(f"Journal: {session.journal.path}", style="dim"))
            value_input.display = False
            self.refresh_bindings()
            return

        heading = Text(f"[{step.kind}] ", style="bold magenta")
        heading.append(step.title, style="bold")
        title.update(heading)
        body.update(self._step_body())
        record = session.record_of(step.id)
        result.update(self._result_text(record))

        missing = session.missing_values(step)
        value_input.display = bool(missing) and record is None
        if missing:
            value_input.placeholder = (f"type the value of {{{missing[0]}}} and press enter "
                                       f"({len(missing)} missing)")
            if record is None:
                value_input.focus()
        self.refresh_bindings()

    def _context_text(self) -> Text:
        session = self.session
        text = Text("kube context: ", style="bold")
        text.append(session.context.label)
        if session.production:
            text.append("  PRODUCTION", style="bold")
        if session.read_only:
            text.append("  · read-only: mutating steps are refused", style="bold")
        if session.context_changed_to is not None:
            text.append(f"  · CHANGED to {session.context_changed_to.context}: mutations stopped, "
                        "press c to review", style="bold")
        return text

    def _step_body(self) -> Group:
        session = self.session
        step = session.current
        assert step is not None
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True)
        table.add_column()
        if step.kind == "ask":
            table.add_row("", Text(step.question or step.title))
            for number, answer in enumerate(step.answers, start=1):
                table.add_row(f"{number}", Text(answer.label, style="bold"))
        if step.kind == "remediate":
            table.add_row("dry run:", Text(f"$ {command_line(session.command_of(step, 'dry_run'))}",
                                           style="green"))
            table.add_row("change:", Text(f"$ {command_line(session.command_of(step))}", style="green"))
            table.add_row("rollback:", Text(f"$ {command_line(session.command_of(step, 'rollback'))}",
                                            style="green"))
            table.add_row("verify:", Text(f"step {step.verify}"))
        elif step.command:
            table.add_row("run:", Text(f"$ {command_line(session.command_of(step))}", style="green"))
        if step.look_for:
            table.add_row("look for:", Text(step.look_for))
        if step.text:
            table.add_row("", Text(step.text.strip()))
        for link in step.links:
            table.add_row("read:", Text(link, style="underline"))
        return Group(table, Text(self._hint(), style="dim italic"))

    def _hint(self) -> str:
        step = self.session.current
        record = self.session.record_of(step.id) if step else None
        if step is None:
            return ""
        if record is not None and step.kind == "check" and record.commands:
            return ("exit status alone does not prove the check: p looks right · f shows the problem · "
                    "n: next step · b: back")
        if record is not None:
            return "n: next step · b: back"
        if step.kind == "check":
            return "r: run the command · m: mark read without running · b: back" if step.command \
                else "m: mark read · b: back"
        if step.kind == "ask":
            return "1-9: choose an answer · b: back"
        if step.kind == "remediate":
            return "a: dry run, then confirm · k: skip · b: back"
        return "n: next step · b: back"

    @staticmethod
    def _result_text(record: StepRecord | None) -> Text:
        if record is None:
            return Text("not done yet", style="dim")
        text = Text("result: ", style="bold")
        text.append(record.result.replace("_", " "), style=RESULT_STYLES.get(record.result, ""))
        if record.answer:
            text.append(f" — {record.answer}")
        if record.reason:
            text.append(f" — {redact_text(record.reason)}")
        return text

    def _stream(self, chunk: str) -> None:
        """Show a chunk of a running command's output; called from the runner's thread."""
        self.app.call_from_thread(self.query_one("#step-output", RichLog).write, Text(chunk.rstrip("\n")))

    def _show_output(self, record: StepRecord) -> None:
        """Close the streamed output of each command with its status and exit code."""
        log = self.query_one("#step-output", RichLog)
        for command in record.commands:
            ended = f"exit {command.exit_status}" if command.exit_status is not None else "did not start"
            if command.status == "timed_out":
                ended = "killed at the timeout"
            log.write(Text(f"[{command.status}, {ended}]", style="green" if command.status == "ok" else "red"))

    # --- keys ---

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        step = self.session.current
        record = self.session.record_of(step.id) if step else None
        if action in ("back", "filter"):
            return super().check_action(action, parameters)
        if action == "accept_context":
            return self.session.context_changed_to is not None
        if action == "previous":
            return len(self.session.path) > 1 and not self.busy
        if step is None or self.busy:
            return False
        if action == "next":
            return record is not None or step.kind == "note"
        if action in ("run", "mark_shown"):
            return step.kind == "check" and record is None and (action == "mark_shown" or bool(step.command))
        if action == "judge":
            return step.kind == "check" and record is not None and bool(record.commands)
        if action == "answer":
            return step.kind == "ask" and record is None
        if action in ("apply", "skip"):
            return step.kind == "remediate" and record is None
        if action == "rollback":
            return step.kind == "remediate" and record is not None and record.result == APPLIED
        return True

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "step-value":
            super().on_input_submitted(event)
            return
        event.stop()
        missing = self.session.missing_values()
        if not missing:
            return
        try:
            self.session.set_value(missing[0], event.value)
        except SessionError as error:
            self.notify(str(error), severity="warning")
            return
        event.input.value = ""
        self.refresh_step()

    def action_run(self) -> None:
        if self._needs_values():
            return
        self._start_busy(f"running {command_line(self.session.command_of(self.session.current))}")
        self._run_check()

    @work(thread=True, exclusive=True, group="session", exit_on_error=False)
    def _run_check(self) -> None:
        self._post_record(
            lambda: self.session.run_check(self.runner, on_output=self._stream),
            log_format="step %s failed", title="Step failed", detail="Running the step failed",
        )

    def _post_record(self, run: Callable[[], StepRecord], log_format: str, title: str,
                     detail: str) -> None:
        """Call `run` in the worker thread and post its record, the refusal or the failure."""
        try:
            record = run()
        except SessionError as error:
            self.post_message(ActionRefused(str(error)))
            return
        except Exception as error:  # shown in the dialog; the traceback goes to the log
            logger.exception(log_format, self.session.path[-1])
            self.post_message(WorkFailed(title, f"{detail}: {error!r}"))
            return
        self.post_message(StepFinished(record))

    def action_judge(self, looks_right: bool) -> None:
        self.session.judge(looks_right)
        self.refresh_step()

    def action_mark_shown(self) -> None:
        self.session.mark_shown()
        self.refresh_step()

    def action_answer(self, number: int) -> None:
        step = self.session.current
        if step is None or number > len(step.answers):
            return
        self.session.answer(step.answers[number - 1].label)
        self.session.advance()
        self.refresh_step()

    def action_skip(self) -> None:
        self.session.skip_remediation()
        self.refresh_step()

    def action_next(self) -> None:
        step = self.session.current
        if step is not None and step.kind == "note" and self.session.record_of(step.id) is None:
            self.session.read_note()
        try:
            self.session.advance()
        except SessionError as error:
            self.notify(str(error), severity="warning")
        self.refresh_step()

    def action_previous(self) -> None:
        self.session.back()
        self.refresh_step()

    def action_apply(self) -> None:
        self._prepare("apply")

    def action_rollback(self) -> None:
        self._prepare("rollback")

    def _prepare(self, action: str) -> None:
        if self.session.read_only:
            self.notify("This session is read-only (--read-only): the change is shown, not run.",
                        title="Refused", severity="warning")
            if action == "apply":
                try:
                    self.session.plan_remediation(self.runner)
                except MutationRefused:
                    pass
                self.refresh_step()
            return
        if self._needs_values():
            return
        self._start_busy("dry run")
        self._plan(action)

    @work(thread=True, exclusive=True, group="session", exit_on_error=False)
    def _plan(self, action: str) -> None:
        try:
            now = self.read_context()
            if not self.session.check_context(now):
                self.post_message(ContextChanged(now))
                return
            plan = self.session.plan_remediation(self.runner)
        except SessionError as error:
            self.post_message(ActionRefused(str(error)))
            return
        except Exception as error:  # shown in the dialog; the traceback goes to the log
            logger.exception("the dry run of step %s failed", self.session.path[-1])
            self.post_message(WorkFailed("Dry run failed", f"Preparing the change failed: {error!r}"))
            return
        self.post_message(PlanReady(plan, action))

    def on_plan_ready(self, message: PlanReady) -> None:
        self._end_busy()
        plan = message.plan
        if plan.dry_run_result is not None:
            log = self.query_one("#step-output", RichLog)
            log.write(Text(f"$ {command_line(plan.dry_run)}  (dry run)", style="bold green"))
            log.write(Text(redact_text(plan.dry_run_result.output.rstrip())))

        def decided(typed: str | None) -> None:
            if typed is None:
                self.notify("Cancelled; nothing ran.", title="Change")
                return
            try:
                confirmation = self.session.confirm(plan, typed_name=typed, action=message.action,
                                                    context_now=self.read_context())
            except MutationRefused as error:
                self.post_message(ActionRefused(str(error)))
                return
            self._start_busy(f"running {command_line(confirmation.argv)}")
            self._apply(confirmation)

        self.app.push_screen(ConfirmChange(plan, action=message.action), decided)

    @work(thread=True, exclusive=True, group="session", exit_on_error=False)
    def _apply(self, confirmation) -> None:
        self._post_record(
            lambda: self.session.run_remediation(self.runner, confirmation,
                                                 context_now=self.read_context(), on_output=self._stream),
            log_format="the change of step %s failed", title="Change failed",
            detail="Running the change failed",
        )

    def on_step_finished(self, message: StepFinished) -> None:
        self._end_busy()
        self._show_output(message.record)
        self.refresh_step()

    def on_action_refused(self, message: ActionRefused) -> None:
        self._end_busy()
        self.notify(message.reason, title="Refused", severity="warning")
        self.refresh_step()

    def on_context_changed(self, message: ContextChanged) -> None:
        self._end_busy()
        self.refresh_step()
        self._ask_context(message.now)

    def on_work_failed(self, message: WorkFailed) -> None:
        # The app shows the dialog; the screen only stops waiting.
        self._end_busy()

    def action_accept_context(self) -> None:
        now = self.session.context_changed_to
        if now is not None:
            self._ask_context(now)

    def _ask_context(self, now: KubeContext) -> None:
        from doctor.session import is_production

        def decided(accepted: bool | None) -> None:
            if accepted:
                self.session.accept_context(now)
                self.notify(f"Mutations go to {now.label} from now on.", title="Context accepted")
            self.refresh_step()

        self.app.push_screen(ConfirmContext(self.session.context, now,
                                            is_production(now.context, self.session.production_contexts)),
                             decided)

    # --- helpers ---

    def _needs_values(self) -> bool:
        missing = self.session.missing_values()
        if missing:
            self.notify(f"Type the value of {{{missing[0]}}} first.", severity="warning")
            self.query_one("#step-value", Input).focus()
            return True
        return False

    def _start_busy(self, activity: str) -> None:
        self.busy = True
        self.query_one("#step-result", Static).update(Text(f"{activity} …", style="italic"))
        if activity.startswith("running "):
            self.query_one("#step-output", RichLog).write(Text(f"$ {activity[len('running '):]}", style="bold"))
        self.refresh_bindings()

    def _end_busy(self) -> None:
        self.busy = False
        self.refresh_bindings()
