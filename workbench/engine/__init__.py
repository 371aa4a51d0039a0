"""The training engine: no UI imports; events out, run directory on disk, control channel in.

    from workbench.engine import train
    run = train(cfg, on_event=print)            # -> RunDirectory

See trainer.py (the loop), setup.py (building a run), checkpoint.py (saving and loading), rundir.py and
events.py (what other processes see). Importing this package does not import torch (the TUI reads events
and run directories without it); `train` and the checkpoint functions load it on first use.
"""

from workbench.engine.events import (CheckpointSaved, Event, LengthSet, QualityMeasured, RunFailed, RunFinished,
                                     RunStarted, RunWarning, SamplesReady, StateChanged, StepMetrics, event_from_dict)
from workbench.engine.rundir import RunDirectory, RunWatcher, list_runs

_LAZY = {
    "save_checkpoint": "workbench.engine.checkpoint",
    "load_checkpoint": "workbench.engine.checkpoint",
    "TrainingFailed": "workbench.engine.trainer",
}


def train(cfg, *, on_event=None, resume=None, run_dir=None, stop_event=None, init_from=None,
          started=None) -> RunDirectory:
    """Train `cfg` and return its run directory (see workbench.engine.trainer.train)."""
    from workbench.engine.trainer import train as _train

    return _train(cfg, on_event=on_event, resume=resume, run_dir=run_dir, stop_event=stop_event,
                  init_from=init_from, started=started)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench.engine' has no attribute {name!r}")


__all__ = ["train", "RunDirectory", "RunWatcher", "list_runs", "save_checkpoint", "load_checkpoint",
           "TrainingFailed", "Event", "RunStarted", "LengthSet", "StepMetrics",
           "SamplesReady", "CheckpointSaved", "QualityMeasured", "RunWarning", "StateChanged", "RunFinished", "RunFailed",
           "event_from_dict"]
