"""train.minutes' decision and the ETA as pure functions of measured numbers, and the steady speed they use
(Throughput with an injected clock): no timing in these tests."""

from __future__ import annotations

import math

import pytest

from workbench.engine.budget import (DECIDE_MIN_SECONDS, DECIDE_MIN_STEPS, SAFETY_MARGIN, Overheads,
                                     decide_total_steps, eta_seconds, network_calls_per_grid, pending,
                                     ready_to_decide)
from workbench.engine.metrics import Throughput

NONE = Overheads()


@pytest.mark.parametrize("done_through, total, every, final, expected", [
    (0, 1000, 500, True, 2),     # steps 500 and 1000 (the last one is the final one)
    (0, 999, 500, True, 2),      # step 500, then the final one at 999
    (500, 1000, 500, True, 1),   # 500 is done
    (499, 1000, 500, True, 2),
    (0, 1000, 0, True, 1),       # every = 0: only the final one
    (0, 1000, 0, False, 0),
    (0, 999, 500, False, 1),     # evaluations: no final one
    (1000, 1000, 500, True, 0),  # nothing left
])
def test_pending_counts_the_periodic_jobs_still_to_come(done_through, total, every, final, expected):
    assert pending(done_through, total, every, final=final) == expected


def test_network_calls_per_grid():
    assert network_calls_per_grid("ddpm", 100) == 100
    assert network_calls_per_grid("dpm-solver++", 20) == 20
    assert network_calls_per_grid("heun", 18) == 35  # the last step is Euler only


def test_without_overheads_the_steps_fill_the_budget_less_the_margin():
    # 600 s budget, 60 s gone, 1 s/step at step 20: 600 * 0.97 - 60 = 522 s -> 522 more steps
    total = decide_total_steps(budget_s=600, elapsed_s=60, seconds_per_step=1.0, step=20, cap=10**6, overheads=NONE)
    assert total == 20 + math.floor(600 * (1 - SAFETY_MARGIN) - 60)
    assert decide_total_steps(budget_s=600, elapsed_s=60, seconds_per_step=1.0, step=20, cap=10**6,
                              overheads=NONE, margin=0.0) == 560


def test_a_cap_smaller_than_what_fits_is_kept():
    assert decide_total_steps(budget_s=600, elapsed_s=60, seconds_per_step=1.0, step=20, cap=300,
                              overheads=NONE) == 300


def test_when_the_time_is_up_one_more_step_is_trained():
    assert decide_total_steps(budget_s=60, elapsed_s=90, seconds_per_step=1.0, step=20, cap=1000,
                              overheads=NONE) == 21
    # a final preview alone would overrun: still one more step, the end comes as soon as it can
    assert decide_total_steps(budget_s=100, elapsed_s=50, seconds_per_step=1.0, step=20, cap=1000,
                              overheads=Overheads(preview_s=60.0)) == 21


def test_previews_and_checkpoints_still_to_come_are_paid_for():
    overheads = Overheads(sample_every=100, preview_s=10.0, checkpoint_every=200, checkpoint_s=4.0)
    total = decide_total_steps(budget_s=1000, elapsed_s=100, seconds_per_step=1.0, step=50, cap=10**6,
                               overheads=overheads, margin=0.0)
    # 900 s for: (total - 50) steps, a preview at each 100 and a final one, a checkpoint at each 200 and a final
    # one. total = 800: 750 + 8 * 10 + 4 * 4 = 846 fits; 850: 800 + 9 * 10 + 5 * 4 = 910 does not.
    def cost(n):
        return (n - 50) + pending(50, n, 100) * 10 + pending(50, n, 200) * 4
    assert cost(total) <= 900 < cost(total + 1)
    assert total < 850


def test_evaluations_count_only_at_their_multiples():
    with_eval = Overheads(eval_every=100, evaluation_s=50.0)
    total = decide_total_steps(budget_s=1000, elapsed_s=0, seconds_per_step=1.0, step=0, cap=10**6,
                               overheads=with_eval, margin=0.0)
    assert total + 50 * (total // 100) <= 1000 < (total + 1) + 50 * ((total + 1) // 100)


def test_the_decision_waits_for_a_steady_window():
    common = dict(step=20, warmup_steps=100, elapsed_s=30.0, budget_s=600.0)
    assert not ready_to_decide(timed_steps=DECIDE_MIN_STEPS - 1, timed_seconds=60.0, **common)
    assert not ready_to_decide(timed_steps=DECIDE_MIN_STEPS, timed_seconds=DECIDE_MIN_SECONDS - 1, **common)
    assert ready_to_decide(timed_steps=DECIDE_MIN_STEPS, timed_seconds=DECIDE_MIN_SECONDS, **common)
    # before the warmup ends (fast steps), and after a quarter of a short budget
    assert ready_to_decide(timed_steps=DECIDE_MIN_STEPS, timed_seconds=1.0, step=99, warmup_steps=100,
                           elapsed_s=10.0, budget_s=600.0)
    assert ready_to_decide(timed_steps=DECIDE_MIN_STEPS, timed_seconds=1.0, step=20, warmup_steps=100,
                           elapsed_s=3.0, budget_s=6.0)


def test_eta_is_the_steps_left_at_the_steady_speed_plus_the_overheads_to_come():
    overheads = Overheads(sample_every=500, preview_s=30.0, checkpoint_every=500, checkpoint_s=2.0)
    # at step 250 of 1000: 750 steps at 0.7 s, previews at 500 and 1000, checkpoints at 500 and 1000
    assert eta_seconds(step=250, total=1000, seconds_per_step=0.7, overheads=overheads, previews_through=249,
                       checkpoints_through=249) == pytest.approx(750 * 0.7 + 2 * 30 + 2 * 2)
    # at the log of step 500, before its preview and checkpoint: they are still to come
    assert eta_seconds(step=500, total=1000, seconds_per_step=0.7, overheads=overheads, previews_through=499,
                       checkpoints_through=499) == pytest.approx(500 * 0.7 + 2 * 30 + 2 * 2)
    # after them (the final log line): nothing left
    assert eta_seconds(step=1000, total=1000, seconds_per_step=0.7, overheads=overheads, previews_through=1000,
                       checkpoints_through=1000) == 0


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_seconds_per_step_average_all_steady_training_and_leave_out_excluded_time():
    clock = FakeClock()
    speed = Throughput(clock=clock)
    clock.now += 30.0                # three warm-up steps, slow
    assert speed.seconds_per_step(3) is None
    speed.mark_steady(3)
    clock.now += 10.0                # 10 steps at 1 s
    speed.exclude(5.0)
    clock.now += 5.0                 # a preview: left out
    assert speed.steady(13) == (10, 10.0)
    clock.now += 40.0                # 20 steps at 2 s: the average, not the latest window
    assert speed.seconds_per_step(33) == pytest.approx(50.0 / 30)


def test_lap_gives_the_windows_speed():
    clock = FakeClock()
    speed = Throughput(clock=clock)
    clock.now += 10.0
    speed.exclude(2.0)
    assert speed.lap(16, 16 * 64) == pytest.approx((2.0, 128.0))
    clock.now += 4.0
    assert speed.lap(4, 4 * 64) == pytest.approx((1.0, 64.0))
