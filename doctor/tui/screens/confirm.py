"""The confirmation dialog every mutating step passes through, and the kube-context check.

The dialog shows where the change goes (context, cluster, namespace), the
exact command, its dry run and that output, the diff against the object as
it is now, the rollback and the step that verifies the change. Cancel has
the focus, so `enter` alone never runs a change. In a production context the
run button stays disabled until the engineer types the resource name.
"""

from __future__ import annotations

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from doctor.redact import redact_text
from doctor.session import KubeContext, RemediationPlan
from doctor.tui.formatting import command_line

OUTPUT_LINES = 40


class ConfirmChange(ModalScreen[str | None]):
    """Ask before one mutating command; dismisses with the typed name, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, plan: RemediationPlan, *, action: str = "apply") -> None:
        super().__init__()
        self.plan = plan
        self.action = action

    def compose(self) -> ComposeResult:
        plan = self.plan
        argv = plan.command if self.action == "apply" else plan.rollback
        verb = "Run this change" if self.action == "apply" else "Roll this change back"
        with Vertical(id="confirm-dialog", classes="-production" if plan.production else ""):
            yield Static(f"{verb}?  {plan.title}", id="confirm-title", markup=False)
            yield Static(_context_line(plan.context, plan.production), id="confirm-context")
            with VerticalScroll(id="confirm-body"):
                yield Static(self._body(argv), id="confirm-details")
            if plan.production:
                yield Static(f"Production context: type {plan.resource} to enable the button.",
                             id="confirm-type-hint", markup=False)
                yield Input(placeholder=plan.resource, id="confirm-name")
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", variant="primary", id="confirm-cancel")
                yield Button(verb, variant="error", id="confirm-run", disabled=plan.production)

    def _body(self, argv: tuple[str, ...]) -> Group:
        plan = self.plan
        parts: list = []
        parts.append(Text("Command", style="bold"))
        parts.append(Text(f"$ {command_line(argv)}", style="green"))

        parts.append(Text("\nDry run", style="bold"))
        if plan.dry_run:
            parts.append(Text(f"$ {command_line(plan.dry_run)}", style="green"))
        result = plan.dry_run_result
        if result is None:
            parts.append(Text("The playbook gives no dry run for this step.", style="yellow"))
        else:
            status = Text(f"{result.status}", style="green" if result.ok else "bold red")
            if result.reason:
                status.append(f": {redact_text(result.reason)}", style="")
            parts.append(status)
            parts.append(Text(_last_lines(redact_text(result.output)), style="dim"))
            if not result.ok:
                parts.append(Text("The dry run did not succeed, so the change may fail or do "
                                  "something else; read the reason before you run it.", style="bold yellow"))

        parts.append(Text("\nDiff", style="bold"))
        if plan.diff:
            parts.append(Syntax(redact_text(plan.diff), "diff", theme="ansi_dark", word_wrap=True))
        else:
            parts.append(Text("No diff: the dry run output above shows what changes.", style="dim"))

        parts.append(Text("\nRollback", style="bold"))
        parts.append(Text(f"$ {command_line(plan.rollback)}" if plan.rollback else "none given",
                          style="green" if plan.rollback else "yellow"))
        if plan.verify:
            parts.append(Text(f"\nAfterwards step {plan.verify} verifies the change.", style="dim"))
        return Group(*parts)

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel", Button).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm-run", Button).disabled = event.value.strip() != self.plan.resource

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm-run":
            typed = self.query_one("#confirm-name", Input).value if self.plan.production else ""
            self.dismiss(typed)
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmContext(ModalScreen[bool]):
    """The kube context changed during the session: mutations wait until the engineer accepts it."""

    BINDINGS = [Binding("escape", "keep_stopped", "Keep mutations stopped")]

    def __init__(self, before: KubeContext, now: KubeContext, production: bool) -> None:
        super().__init__()
        self.before = before
        self.now = now
        self.production = production

    def compose(self) -> ComposeResult:
        with Vertical(id="context-dialog"):
            yield Static("The kube context changed", id="context-title")
            yield Static(self._change_text(), id="context-change")
            yield Static("Mutations stay stopped until you accept the new context.", id="context-note")
            with Horizontal(id="context-buttons"):
                yield Button("Keep stopped", variant="primary", id="context-keep")
                yield Button("Accept the new context", variant="warning", id="context-accept")

    def _change_text(self) -> Text:
        text = Text(f"Session started in: {self.before.label}\nNow:              ")
        text.append(self.now.label, style="bold reverse red" if self.production else "")
        if self.production:
            text.append("  PRODUCTION", style="bold red")
        return text

    def on_mount(self) -> None:
        self.query_one("#context-keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "context-accept")

    def action_keep_stopped(self) -> None:
        self.dismiss(False)


def _context_line(context: KubeContext, production: bool) -> Text:
    text = Text("Target: ", style="bold")
    text.append(context.label, style="bold reverse red" if production else "bold")
    if production:
        text.append("  PRODUCTION", style="bold red")
    return text


def _last_lines(text: str) -> str:
    lines = text.rstrip().splitlines()
    if len(lines) <= OUTPUT_LINES:
        return "\n".join(lines)
    return f"… {len(lines) - OUTPUT_LINES} earlier lines\n" + "\n".join(lines[-OUTPUT_LINES:])
