"""Asked on quit while a run is live: stop it, or leave it training in the background."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

STOP, LEAVE, CANCEL = "stop", "leave", "cancel"


class QuitDialog(ModalScreen[str]):
    """Dismisses with "stop", "leave" or "cancel"."""

    BINDINGS = [
        Binding("s", "choose('stop')", "Stop run", show=False),
        Binding("l", "choose('leave')", "Leave training", show=False),
        Binding("escape,c", "choose('cancel')", "Cancel", show=False),
    ]

    def __init__(self, run_name: str):
        super().__init__()
        self.run_name = run_name

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"Run [b]{self.run_name}[/b] is still training.", id="question")
            yield Static("Leave it training and reattach later with [b]ddpm-workbench attach[/b], "
                         "or stop it now (a checkpoint is saved first)?", classes="dim")
            with Horizontal(id="choices"):
                yield Button("[u]L[/u]eave training", id=LEAVE, variant="primary")
                yield Button("[u]S[/u]top run", id=STOP, variant="error")
                yield Button("[u]C[/u]ancel", id=CANCEL)

    def on_mount(self) -> None:
        self.query_one(f"#{LEAVE}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
