"""Where events go: the run directory (durable: the event, and status.json derived from it), the caller's
`on_event` (live), TensorBoard (optional).

Only rank 0 publishes. A consumer's exception never stops training: it is recorded once as a warning in
the run directory.
"""

from __future__ import annotations

from typing import Callable

from workbench.engine.events import Event, QualityMeasured, RunWarning, SamplesReady, StepMetrics
from workbench.engine.rundir import RunDirectory


class Publisher:
    def __init__(self, run: RunDirectory | None, on_event: Callable[[Event], None] | None = None,
                 enabled: bool = True):
        self.run, self.on_event, self.enabled = run, on_event, enabled
        self.tensorboard = None
        self._callback_failed = False

    def start_tensorboard(self, step: int) -> str | None:
        """Open a TensorBoard writer in <run>/tensorboard; returns a warning message when it cannot."""
        if not self.enabled or self.run is None:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as exc:  # noqa: BLE001 - ImportError, or tensorboard's own import problems
            return (f"train.tensorboard = true but TensorBoard cannot be imported ({type(exc).__name__}); "
                    "`pip install tensorboard` or set train.tensorboard = false")
        self.tensorboard = SummaryWriter(log_dir=str(self.run.path / "tensorboard"), purge_step=step or None)
        return None

    def emit(self, event: Event) -> None:
        if not self.enabled:
            return
        if self.run is not None:
            self.run.record(event)  # the event, and status.json derived from it
        if self.tensorboard is not None:
            self._to_tensorboard(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception as exc:  # noqa: BLE001 - a display bug must not cost the run
                if not self._callback_failed and self.run is not None:
                    self._callback_failed = True
                    self.run.append_event(RunWarning(f"an on_event consumer raised {type(exc).__name__}: {exc}; "
                                                     "training goes on"))

    def _to_tensorboard(self, event: Event) -> None:
        tb = self.tensorboard
        if isinstance(event, StepMetrics):
            for name in ("loss", "lr", "grad_norm", "img_per_s", "it_per_s"):
                tb.add_scalar(f"train/{name}", getattr(event, name), event.step)
            for i, value in enumerate(event.loss_quartiles):
                tb.add_scalar(f"loss_by_t/q{i + 1}", value, event.step)
            if event.mfu >= 0:
                tb.add_scalar("train/mfu", event.mfu, event.step)
        elif isinstance(event, QualityMeasured):
            tb.add_scalar(f"quality/{event.metric}", event.value, event.step)
            tb.add_scalar("quality/seconds", event.seconds, event.step)
            tb.flush()
        elif isinstance(event, SamplesReady) and event.image is not None:
            tb.add_image("samples", event.image, event.step, dataformats="HWC")
            tb.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
