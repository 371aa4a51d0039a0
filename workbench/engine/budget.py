"""How long a run is: the steps a time budget (`train.minutes`) allows, and the time left (the ETA).

Pure functions of measured numbers, so they can be tested without a clock; the trainer measures (see
workbench.engine.trainer: `_measure_length`, `_eta`) and calls them.

The budget covers the whole run as the user waits for it: start-up (data, model), training, the preview grids
(every train.sample_every steps and the final one), evaluations, the checkpoints (every
train.checkpoint_every steps and the final one). After a short steady timing window (WHEN TO DECIDE below)
the trainer knows seconds per training step and the cost of a preview and a checkpoint; `decide_total_steps`
then picks the largest step count whose remaining training and overheads fit in what is left of the budget,
less a safety margin, at most train.steps.
"""

from __future__ import annotations

from dataclasses import dataclass

# WHEN TO DECIDE. Steps 0-2 of a process are not timed: oneDNN (cuDNN) creates its kernels for each new shape
# there, the allocator grows, and a torch.compile'd model compiles in step 0. From then on the trainer times
# steps (previews, checkpoints and pauses left out) and decides at the first step with at least
# DECIDE_MIN_STEPS timed steps and DECIDE_MIN_SECONDS of them: on a 2-core CPU (0.45-1 s per default step)
# that is 60-130 steps, a tenth of a 10-minute budget. Not less: the default run's first 15 s ran 76 img/s on
# the AVX2 path and the rest 57-65 (both runs measured so; a shared VM's CPU slows after a burst), and a
# decision on the first 15 s ended the 11-minute run after 12.1. It decides at the end of the learning-rate
# warmup instead when that comes first (on a GPU, or with AMX: the default's 100 warmup steps take ~45 s
# there; the warmup does not depend on the length, so deciding before it ends gives exactly the cosine
# schedule of a run configured with the decided steps), and after a quarter of the budget at the latest (a
# budget of a few seconds). Before it decides, the ETA is that of the length it would decide now.
STEADY_AFTER_STEPS = 3
DECIDE_MIN_STEPS = 10
DECIDE_MIN_SECONDS = 60.0
# What the decision leaves unplanned: the speed varies by a few percent over a run on a shared machine, and
# writing the PNGs, fsync of checkpoints and the process exit are not measured.
SAFETY_MARGIN = 0.03


def ready_to_decide(*, timed_steps: int, timed_seconds: float, step: int, warmup_steps: int, elapsed_s: float,
                    budget_s: float) -> bool:
    """Whether the steady timing window is long enough to decide the run's length now (see WHEN TO DECIDE).

    timed_steps, timed_seconds: steady steps timed so far and their seconds; step: the next step to train."""
    if timed_steps < DECIDE_MIN_STEPS:
        return False
    return timed_seconds >= DECIDE_MIN_SECONDS or step + 1 >= warmup_steps or elapsed_s >= budget_s / 4


def network_calls_per_grid(sampler: str, steps: int) -> int:
    """Network evaluations of one preview grid: one per step, except Heun's 2 * steps - 1 (the last step is
    Euler only). Classifier-free guidance doubles the batch of each call, not the calls."""
    return 2 * steps - 1 if sampler == "heun" else steps


def pending(done_through: int, total: int, every: int, *, final: bool = True) -> int:
    """How many of a periodic job (every `every` steps; 0 = never) are still to come after step
    `done_through` up to step `total`, plus the one at the end when `final` and `total` is not a multiple."""
    if total <= done_through:
        return 0
    count = total // every - done_through // every if every > 0 else 0
    if final and (every <= 0 or total % every):
        count += 1
    return count


@dataclass(frozen=True)
class Overheads:
    """What a run does besides training steps, and what each costs (seconds, measured or estimated)."""

    sample_every: int = 0       # train.sample_every (previews at its multiples, and one at the end)
    preview_s: float = 0.0
    checkpoint_every: int = 0   # train.checkpoint_every (checkpoints at its multiples, and one at the end)
    checkpoint_s: float = 0.0
    eval_every: int = 0         # evaluations at its multiples only; 0 = none
    evaluation_s: float = 0.0

    def seconds(self, total: int, *, previews_through: int, checkpoints_through: int,
                evaluations_through: int | None = None) -> float:
        """The overheads still to come until step `total`, given the step of the last preview, checkpoint
        and evaluation done (or the current step)."""
        evaluated = checkpoints_through if evaluations_through is None else evaluations_through
        return (pending(previews_through, total, self.sample_every) * self.preview_s
                + pending(checkpoints_through, total, self.checkpoint_every) * self.checkpoint_s
                + pending(evaluated, total, self.eval_every, final=False) * self.evaluation_s)


def decide_total_steps(*, budget_s: float, elapsed_s: float, seconds_per_step: float, step: int, cap: int,
                       overheads: Overheads, margin: float = SAFETY_MARGIN) -> int:
    """train.steps for a run `elapsed_s` seconds into a budget of `budget_s`, at `step` (steps done; the
    previews and checkpoints of it already done), training at `seconds_per_step`: the largest total in
    [step + 1, cap] whose remaining steps and overheads fit in budget_s * (1 - margin) - elapsed_s; step + 1
    when none does (the time is up: one more step, then the final preview and checkpoint), cap when all do."""
    available = budget_s * (1.0 - margin) - elapsed_s
    low, high = step + 1, max(step + 1, cap)

    def fits(total: int) -> bool:
        rest = overheads.seconds(total, previews_through=step, checkpoints_through=step)
        return (total - step) * seconds_per_step + rest <= available

    if fits(high):
        return high
    if not fits(low):
        return low
    while high - low > 1:  # fits(low), not fits(high); the cost grows with total
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def eta_seconds(*, step: int, total: int, seconds_per_step: float, overheads: Overheads, previews_through: int,
                checkpoints_through: int, evaluations_through: int | None = None) -> float:
    """Seconds until the run ends: the steps left at the average speed of all steady training so far, plus
    the previews, evaluations and checkpoints still to come."""
    rest = overheads.seconds(total, previews_through=previews_through, checkpoints_through=checkpoints_through,
                             evaluations_through=evaluations_through)
    return max(0, total - step) * seconds_per_step + rest
