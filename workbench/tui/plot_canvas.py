"""Line charts drawn with Braille dots (2 x 4 per cell), with labelled axes, as a Rich `Text`.

Used by the loss chart and the schedule comparison. Each series is reduced to one dot column at a time (the
span of its values there, joined to the previous column), so drawing costs the chart's width, not the number
of points: a long run's 100 000 loss values redraw as fast as 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from rich.text import Text

BRAILLE_BASE = 0x2800
# bit of the dot at (x, y) inside a cell, x in 0..1, y in 0..3 (Unicode Braille Patterns)
DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


@dataclass
class Series:
    xs: Sequence[float]
    ys: Sequence[float]
    style: str
    label: str = ""


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """About `count` round numbers (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round values (1, 2, 5 x 10^k, thinned to about `count`) inside [lo, hi] for a log axis."""
    if lo <= 0 or hi <= lo:
        return [lo]
    ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
             for m in (1, 2, 5) if lo <= m * 10.0 ** k <= hi]
    if len(ticks) > count:
        decades = [t for t in ticks if math.isclose(math.log10(t), round(math.log10(t)))]
        ticks = decades if len(decades) >= 2 else ticks[:: math.ceil(len(ticks) / count)]
    return ticks or [lo, hi]


def format_number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.3g}"


class BrailleCanvas:
    def __init__(self, cols: int, rows: int):
        self.cols, self.rows = cols, rows
        self.bits = np.zeros((rows, cols), dtype=np.int32)
        self.owner = np.full((rows, cols), -1, dtype=np.int32)  # which series coloured the cell last

    def span(self, dot_x: int, dot_lo: int, dot_hi: int, series: int) -> None:
        """Set the dots of column `dot_x` from row `dot_lo` to `dot_hi` (dot coordinates, 0 at the top)."""
        col, sub = divmod(dot_x, 2)
        for dot_y in range(max(0, dot_lo), min(self.rows * 4 - 1, dot_hi) + 1):
            row, bit = divmod(dot_y, 4)
            self.bits[row, col] |= DOT_BITS[sub][bit]
            self.owner[row, col] = series


def render_chart(series: list[Series], width: int, height: int, *, log_y: bool = False,
                 y_range: tuple[float, float] | None = None, x_range: tuple[float, float] | None = None,
                 empty_text: str = "no data yet") -> Text:
    """A chart `width` x `height` cells: y labels on the left, x labels underneath."""
    if width < 12 or height < 4:
        return Text("")
    points = [(np.asarray(s.xs, dtype=np.float64), np.asarray(s.ys, dtype=np.float64)) for s in series]
    points = [(x[ok], y[ok]) for x, y in points for ok in [np.isfinite(x) & np.isfinite(y) & ((y > 0) if log_y else True)]]
    if not any(len(x) for x, _ in points):
        return Text(empty_text.center(width) + "\n" * (height - 1), style="dim")
    all_x = np.concatenate([x for x, _ in points if len(x)])
    all_y = np.concatenate([y for _, y in points if len(y)])
    x0, x1 = x_range or (float(all_x.min()), float(all_x.max()))
    y0, y1 = y_range or (float(all_y.min()), float(all_y.max()))
    if x1 <= x0:
        x1 = x0 + 1
    transform = np.log10 if log_y else (lambda v: v)
    if y1 <= y0:
        y0, y1 = (y0 / 1.5, y1 * 1.5) if log_y else (y0 - 1, y1 + 1)
    ticks = log_ticks(y0, y1) if log_y else nice_ticks(y0, y1)
    labels = [format_number(t) for t in ticks]
    label_w = max(len(s) for s in labels + [format_number(y0), format_number(y1)])
    plot_cols, plot_rows = width - label_w - 1, height - 2
    if plot_cols < 4 or plot_rows < 2:
        return Text("")
    canvas = BrailleCanvas(plot_cols, plot_rows)
    t0, t1 = float(transform(y0)), float(transform(y1))
    dots_x, dots_y = plot_cols * 2, plot_rows * 4

    def to_dot_y(values):
        return np.clip(np.round((t1 - transform(values)) / (t1 - t0) * (dots_y - 1)), 0, dots_y - 1).astype(int)

    for index, (xs, ys) in enumerate(points):
        if not len(xs):
            continue
        columns = np.clip(np.round((xs - x0) / (x1 - x0) * (dots_x - 1)), 0, dots_x - 1).astype(int)
        rows = to_dot_y(ys)
        order = np.argsort(columns, kind="stable")
        columns, rows = columns[order], rows[order]
        starts = np.flatnonzero(np.r_[True, columns[1:] != columns[:-1]])
        lows = np.minimum.reduceat(rows, starts)
        highs = np.maximum.reduceat(rows, starts)
        firsts = rows[starts]
        lasts = rows[np.r_[starts[1:] - 1, len(rows) - 1]]
        previous: tuple[int, int] | None = None  # (column, row) of the last dot drawn
        for col, lo, hi, first, last in zip(columns[starts], lows, highs, firsts, lasts):
            col = int(col)
            if previous is not None:  # a straight line from the previous column, so the curve has no gaps
                pcol, prow = previous
                for c in range(pcol + 1, col):
                    r = round(prow + (int(first) - prow) * (c - pcol) / (col - pcol))
                    canvas.span(c, min(r, prow), max(r, prow) if c == pcol + 1 else r, index)
                lo, hi = min(int(lo), prow) if col == pcol + 1 else int(lo), max(int(hi), prow) if col == pcol + 1 else int(hi)
            canvas.span(col, int(lo), int(hi), index)
            previous = (col, int(last))

    tick_rows = {int(r) // 4: label for r, label in zip(to_dot_y(np.asarray(ticks)), labels)}
    text = Text(no_wrap=True, overflow="crop")
    for row in range(plot_rows):
        text.append(tick_rows.get(row, "").rjust(label_w) + ("┤" if row in tick_rows else "│"), style="dim")
        # one span per run of cells in the same colour: far fewer spans than cells to render
        chars = "".join(chr(BRAILLE_BASE + int(b)) if b else " " for b in canvas.bits[row])
        owners = [int(o) if b else -1 for o, b in zip(canvas.owner[row], canvas.bits[row])]
        start = 0
        for col in range(1, plot_cols + 1):
            if col == plot_cols or owners[col] != owners[start]:
                text.append(chars[start:col], style=series[owners[start]].style if owners[start] >= 0 else "")
                start = col
        text.append("\n")
    text.append(" " * label_w + "└" + "─" * plot_cols + "\n", style="dim")
    left, right = format_number(x0), format_number(x1)
    middle = format_number((x0 + x1) / 2)
    axis = list(" " * plot_cols)
    for pos, label in ((0, left), ((plot_cols - len(middle)) // 2, middle), (plot_cols - len(right), right)):
        if pos >= 0 and all(c == " " for c in axis[max(0, pos - 1): pos + len(label) + 1]):
            axis[pos: pos + len(label)] = label
    text.append(" " * (label_w + 1) + "".join(axis), style="dim")
    return text
