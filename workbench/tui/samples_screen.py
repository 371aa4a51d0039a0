"""Browse the sample grids of a run over training steps, and the denoising progression of its checkpoint.

The progression comes from `ddpm-workbench sample --strip` (workbench.sampling) run as a separate process in a
thread worker, so sampling never blocks the UI and never runs inside it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from workbench.tui.sample_view import SampleView


class SamplesScreen(Screen):
    BINDINGS = [
        Binding("escape,g,f4", "app.pop_screen", "Back"),
        Binding("q,ctrl+q", "app.request_quit", "Quit", key_display="q"),
        Binding("d", "progression", "Denoising progression"),
    ]

    def __init__(self, run_name: str, grids: list[tuple[int, str]], renderer: str, run_path: str = ""):
        super().__init__()
        self.run_name = run_name
        self.run_path = Path(run_path) if run_path else None
        self.busy = False
        self.grids = list(grids)
        self.renderer = renderer

    def compose(self) -> ComposeResult:
        yield Static(f" [b reverse] samples [/] run {self.run_name}: {len(self.grids)} grid(s) from fixed noise "
                     "with EMA weights; ↑/↓ to browse", classes="screen-title")
        with Horizontal():
            yield OptionList(*[Option(f"step {step}", id=str(i)) for i, (step, _) in enumerate(self.grids)],
                             id="grid-list")
            yield SampleView(self.renderer, id="grid", empty_text="this run has no sample grids yet")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(OptionList).border_title = "steps"
        if self.grids:
            options = self.query_one(OptionList)
            options.highlighted = len(self.grids) - 1
            self.show(len(self.grids) - 1)

    def add_grids(self, grids: list[tuple[int, str]]) -> None:
        """Grids the engine wrote while this screen was open join the list."""
        found = self.query(OptionList)
        if len(grids) <= len(self.grids) or not found:
            return
        options = found.first()
        for index in range(len(self.grids), len(grids)):
            self.grids.append(grids[index])
            options.add_option(Option(f"step {grids[index][0]}", id=str(index)))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.show(int(event.option.id))

    def show(self, index: int) -> None:
        step, path = self.grids[index]
        view = self.query_one(SampleView)
        view.show(self.app.sample_image(path))
        view.border_title = f"step {step} · {path}"

    # -- denoising progression of the latest checkpoint --------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "progression":
            if importlib.util.find_spec("workbench.commands.sample") is None or self.run_path is None:
                return False
            if self.busy or not (self.run_path / "checkpoints" / "latest.pt").exists():
                return None
        return True

    def action_progression(self) -> None:
        self.busy = True
        self.refresh_bindings()
        self.query_one(SampleView).border_title = "sampling the denoising progression of the latest checkpoint…"
        self.make_progression(self.run_path)

    @work(thread=True, exclusive=True, exit_on_error=False, name="denoising progression")
    def make_progression(self, run_path: Path) -> None:
        folder = run_path / "progression"
        folder.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        strip = folder / f"strip-{stamp}.png"
        command = [sys.executable, "-m", "workbench", "sample", "--run", str(run_path), "--n", "4",
                   "--out", str(folder / f"grid-{stamp}.png"), "--strip", str(strip), "--quiet"]
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            raise RuntimeError(lines[-1] if lines else f"`ddpm-workbench sample` exited with {done.returncode}")
        self.app.call_from_thread(self.show_progression, str(strip))

    def show_progression(self, path: str) -> None:
        self.busy = False
        self.refresh_bindings()
        view = self.query_one(SampleView)
        view.show(self.app.sample_image(path))
        view.border_title = f"denoising progression (x_t and predicted x0 over t) · {path}"

    def on_worker_state_changed(self, event) -> None:
        if event.worker.name == "denoising progression" and event.state.name in ("ERROR", "CANCELLED"):
            self.busy = False
            self.refresh_bindings()
            self.query_one(SampleView).border_title = "no progression (see the error)"
