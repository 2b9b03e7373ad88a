"""The symptom form: what fails, between whom, since when, for a start without evidence.

The form returns a `SymptomRequest`. The app turns it into a read-only live
collection scoped to that symptom (the probes its candidate causes need),
then shows the diagnosis as if a bundle had been scanned.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


@dataclass(frozen=True)
class SymptomRequest:
    """The engineer's description of the failure, as the live collection's scope."""

    symptom: str
    caller: str = ""
    callee: str = ""
    since: str = "1h"
    namespace: str = ""

    def as_journal_data(self) -> dict[str, str]:
        return {"symptom": self.symptom, "caller": self.caller, "callee": self.callee,
                "since": self.since, "namespace": self.namespace}


class SymptomForm(ModalScreen[SymptomRequest | None]):
    """Ask for the failing code, the caller, the callee, since when, and the namespace."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, context_label: str, *, error: str = "") -> None:
        super().__init__()
        self.context_label = context_label
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="symptom-form"):
            yield Static("What fails?", id="symptom-title")
            yield Static(f"Evidence is read (never changed) from {self.context_label}.",
                         id="symptom-context", markup=False)
            yield Label("Code or symptom: 503, 403, 401, 429, tls, 137, latency, timeout, sync")
            yield Input(placeholder="503", id="symptom-code")
            yield Label("Caller (client workload or pod that gets the error; optional)")
            yield Input(placeholder="frontend", id="symptom-caller")
            yield Label("Callee (service NAME or NAME.NAMESPACE; optional)")
            yield Input(placeholder="checkout.shop", id="symptom-callee")
            yield Label("Since when (as kubectl logs --since: 30m, 2h)")
            yield Input(value="1h", id="symptom-since")
            yield Label("Namespace (empty: the kube context's namespace)")
            yield Input(id="symptom-namespace")
            yield Static(self.error, id="symptom-error", markup=False)
            with Horizontal(id="symptom-buttons"):
                yield Button("Collect evidence", variant="primary", id="symptom-collect")
                yield Button("Cancel", id="symptom-cancel")

    def on_mount(self) -> None:
        self.query_one("#symptom-code", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "symptom-collect":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        values = {name: self.query_one(f"#symptom-{name}", Input).value.strip()
                  for name in ("code", "caller", "callee", "since", "namespace")}
        error = self.query_one("#symptom-error", Static)
        if not values["code"]:
            error.update("Type the failing code or symptom, such as 503.")
            return
        if not values["since"]:
            error.update("Type how far back to read the logs, such as 30m.")
            return
        self.dismiss(SymptomRequest(values["code"], values["caller"], values["callee"], values["since"],
                                    values["namespace"]))

    def action_cancel(self) -> None:
        self.dismiss(None)
