"""The numbers panel and the Braille charts, without an app."""

from __future__ import annotations

import math

import pytest

from workbench.engine.events import RunStarted, StepMetrics
from workbench.tui.plot_canvas import BRAILLE_BASE, Series, log_ticks, nice_ticks, render_chart
from workbench.tui.run_model import RunModel
from workbench.tui.stats_panel import StatsPanel, format_duration


def test_stats_show_throughput_progress_and_gpu_figures():
    model = RunModel()
    model.apply([
        RunStarted(run_dir="r", total_steps=1000, device="cuda:0 (NVIDIA H100)", world_size=2),
        StepMetrics(step=250, loss=0.1, lr=1.5e-4, grad_norm=0.75, it_per_s=12.5, img_per_s=1600.0, elapsed_s=20,
                    eta_s=3725, gpu_mem_bytes=3 * 2**30, gpu_util=87.0, mfu=0.31),
    ])
    text = StatsPanel.describe(model, 80).plain
    for expected in ("step 250/1000  25%", "ETA 1h02m", "12.50 it/s", "1600 img/s", "lr 1.50e-04",
                     "grad norm 0.75", "device cuda:0 (NVIDIA H100) ×2", "mem 3.0 GiB", "util 87%", "MFU 31.0%"):
        assert expected in text, expected


def test_stats_on_cpu_leave_out_what_is_unknown():
    model = RunModel()
    model.apply([RunStarted(run_dir="r", total_steps=10, device="cpu"),
                 StepMetrics(step=5, loss=0.1, lr=1e-4, grad_norm=1.0, it_per_s=1.0, img_per_s=8.0, elapsed_s=5,
                             eta_s=5)])
    text = StatsPanel.describe(model, 80).plain
    assert "device cpu" in text and "mem" not in text and "util" not in text and "MFU" not in text


def test_durations():
    assert [format_duration(s) for s in (5, 65, 3725, -1)] == ["5s", "1m05s", "1h02m", "?"]


def test_ticks_are_round_numbers_inside_the_range():
    assert nice_ticks(0, 10) == [0, 5, 10]  # about 4 ticks: steps of 1, 2 or 5 x 10^k
    assert nice_ticks(-9.5, 9.2) == pytest.approx([-5, 0, 5])
    assert log_ticks(0.03, 0.6) == [0.05, 0.1, 0.2, 0.5]
    assert log_ticks(0.001, 10) == [0.001, 0.01, 0.1, 1.0, 10.0]  # many decades: decades only


def dots(text) -> list[tuple[int, int]]:
    """(row, column) of every cell holding Braille dots."""
    lines = text.plain.split("\n")
    return [(r, c) for r, line in enumerate(lines) for c, ch in enumerate(line) if BRAILLE_BASE < ord(ch) <= BRAILLE_BASE + 0xFF]


def test_a_falling_curve_falls_and_has_no_gaps():
    xs = list(range(1, 201))
    ys = [math.exp(-x / 40) for x in xs]
    text = render_chart([Series(xs, ys, "red")], 60, 15, log_y=True)
    cells = dots(text)
    columns = sorted({c for _, c in cells})
    assert columns == list(range(columns[0], columns[-1] + 1))  # joined from column to column
    first_row = min(r for r, c in cells if c == columns[0])
    last_row = max(r for r, c in cells if c == columns[-1])
    assert first_row < last_row  # higher loss at the start is drawn higher up
    assert "└" in text.plain and "200" in text.plain  # x axis with its end label


def test_empty_and_tiny_charts():
    assert "no data yet" in render_chart([Series([], [], "red")], 40, 10).plain
    assert render_chart([Series([1], [1], "red")], 5, 2).plain == ""
    assert dots(render_chart([Series([1, 2], [0.0, -1.0], "red")], 40, 10, log_y=True)) == []  # nothing positive
