"""Commands reaching a running engine: the stop event (Ctrl-C, SIGTERM, a TUI thread) and the run
directory's control folder (pause, resume, sample, checkpoint, stop from another process).

The folder is listed at most every CONTROL_POLL_S seconds of wall time (one os.listdir), so polling every
step costs nothing. Under torchrun only rank 0 reads the folder and any rank may see a signal; the ranks
act on the union of what they received, agreed with one small all-reduce at log steps (where the host
syncs with the device anyway), so they always stop, pause or checkpoint at the same step. The same
all-reduce carries the run length rank 0 decided for train.minutes (`propose_length`), so every rank
switches to it at the same step without a collective of its own.
"""

from __future__ import annotations

import time

import torch

from workbench.engine import distributed as dist_utils
from workbench.engine.rundir import CONTROL_COMMANDS, RunDirectory

CONTROL_POLL_S = 0.5


class ControlInbox:
    def __init__(self, run: RunDirectory, distributed, device: torch.device, stop_event=None, agree_every: int = 1):
        self.run, self.distributed, self.device = run, distributed, device
        self.stop_event = stop_event
        self.agree_every = agree_every
        self._next_poll = 0.0
        self._pending: list[str] = []
        self._proposed_length = 0  # rank 0: train.steps decided for train.minutes, not yet agreed
        self.agreed_length = 0     # every rank: that length once agreed (0: none); see take_length

    def propose_length(self, total_steps: int) -> None:
        """Rank 0: deliver this train.steps to every rank with the next agreement."""
        self._proposed_length = int(total_steps)

    def take_length(self) -> int:
        """The agreed train.steps (once; 0 when none arrived)."""
        length, self.agreed_length = self.agreed_length, 0
        return length

    def _local(self, force_poll: bool = False) -> list[str]:
        commands = ["stop"] if self.stop_event is not None and self.stop_event.is_set() else []
        if self.distributed.is_main:
            now = time.monotonic()
            if force_poll or now >= self._next_poll:
                self._next_poll = now + CONTROL_POLL_S
                commands.extend(self.run.take_control())
        return commands

    def at_step(self, step: int) -> list[str]:
        """Commands to act on before training step `step` (in a torchrun job: only at log steps)."""
        commands = self._local()
        if not self.distributed.enabled:
            return commands
        self._pending.extend(commands)
        return self.agree() if step % self.agree_every == 0 else []

    def while_paused(self) -> list[str]:
        """Commands during a pause (every rank calls this in step, a few times a second)."""
        commands = self._local(force_poll=True)
        if not self.distributed.enabled:
            return commands
        self._pending.extend(commands)
        return self.agree()

    def agree(self) -> list[str]:
        """All ranks get the union of what any rank received (one small all-reduce)."""
        commands, self._pending = self._pending, []
        length, self._proposed_length = self._proposed_length, 0
        # float64: a length up to 2**53 survives exactly (train.steps is at most 10**9)
        flags = torch.tensor([float(name in commands) for name in CONTROL_COMMANDS] + [float(length)],
                             dtype=torch.float64, device=self.device)
        dist_utils.all_reduce_max(flags, self.distributed)
        *flags, agreed = flags.tolist()
        if agreed:
            self.agreed_length = int(agreed)
        return [name for name, on in zip(CONTROL_COMMANDS, flags) if on]
