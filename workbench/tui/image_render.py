"""Drawing sample grids in a terminal: which way to draw, and the half-block renderer everyone can show.

Half-blocks work everywhere (plain SSH, tmux, screen): each cell shows two pixels, the upper one as the
foreground colour of "▀" and the lower one as its background. Real pixels need a terminal that speaks the
Kitty graphics protocol or Sixel; `auto` picks those only on evidence from the environment (never by asking
the terminal, which can hang over slow links) and always uses half-blocks inside tmux or screen, which
pass neither protocol through reliably.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

RENDERERS = ("auto", "halfblock", "sixel", "kitty")
UPPER_HALF = "\u2580"  # ▀

SIXEL_TERMS = ("foot", "mlterm", "yaft", "contour")
SIXEL_PROGRAMS = ("WezTerm", "mintty", "contour")


def detect_renderer(env: Mapping[str, str] | None = None, *, is_tty: bool = True) -> tuple[str, str]:
    """(renderer, why) for `ui.image_renderer = "auto"`, judged from environment variables only."""
    env = os.environ if env is None else env
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    if not is_tty:
        return "halfblock", "output is not a terminal"
    if env.get("TMUX") or term.startswith(("screen", "tmux")) or program == "tmux":
        return "halfblock", "inside tmux/screen, which do not pass graphics through reliably"
    if env.get("KITTY_WINDOW_ID") or term == "xterm-kitty":
        return "kitty", "kitty terminal"
    if program == "ghostty" or term == "xterm-ghostty":
        return "kitty", "ghostty terminal"
    if program in SIXEL_PROGRAMS or term.startswith(SIXEL_TERMS) or env.get("KONSOLE_VERSION"):
        return "sixel", f"{program or term or 'Konsole'} supports Sixel"
    return "halfblock", "no graphics-capable terminal detected"


def graphics_available() -> bool:
    """Whether the optional Sixel/Kitty widgets (package textual-image) can be imported."""
    import importlib.util

    return importlib.util.find_spec("textual_image") is not None


def choose_renderer(setting: str, env: Mapping[str, str] | None = None, *, is_tty: bool = True) -> tuple[str, str]:
    """The renderer to use for `ui.image_renderer = setting`, and why (shown in the event log)."""
    if setting == "auto":
        renderer, why = detect_renderer(env, is_tty=is_tty)
    else:
        renderer, why = setting, "ui.image_renderer"
    if renderer in ("sixel", "kitty") and not graphics_available():
        return "halfblock", f"{renderer} needs the textual-image package (pip install textual-image)"
    return renderer, why


def fit(image_size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest (width, height) with the image's aspect ratio inside `box`, at least 1x1."""
    w, h = image_size
    bw, bh = box
    if w <= 0 or h <= 0 or bw <= 0 or bh <= 0:
        return 0, 0
    scale = min(bw / w, bh / h)
    return max(1, int(w * scale)), max(1, int(h * scale))


class HalfBlockImage:
    """A Rich renderable: an RGB PIL image scaled into `width` x `height` cells, two pixels per cell."""

    def __init__(self, image: Any, width: int, height: int):
        self.image = image
        self.width = max(0, width)
        self.height = max(0, height)
        self._lines: list[list[Segment]] | None = None

    def lines(self) -> list[list[Segment]]:
        if self._lines is None:
            self._lines = self._build()
        return self._lines

    def _build(self) -> list[list[Segment]]:
        from PIL import Image

        blank = [Segment(" " * self.width)] if self.width else []
        pw, ph = fit(self.image.size, (self.width, self.height * 2))
        if pw == 0:
            return [list(blank) for _ in range(self.height)]
        ph += ph % 2  # whole cells
        upscale = pw >= self.image.size[0]
        scaled = self.image.convert("RGB").resize((pw, ph), Image.NEAREST if upscale else Image.BOX)
        pixels = scaled.load()
        pad_left = (self.width - pw) // 2
        pad_top = (self.height - ph // 2) // 2
        lines = [list(blank) for _ in range(pad_top)]
        styles: dict[tuple, Style] = {}
        for row in range(0, ph, 2):
            line = [Segment(" " * pad_left)] if pad_left else []
            for x in range(pw):
                key = (pixels[x, row], pixels[x, row + 1])
                style = styles.get(key)
                if style is None:
                    style = styles[key] = Style(color=Color.from_rgb(*key[0]), bgcolor=Color.from_rgb(*key[1]))
                line.append(Segment(UPPER_HALF, style))
            rest = self.width - pad_left - pw
            if rest > 0:
                line.append(Segment(" " * rest))
            lines.append(line)
        while len(lines) < self.height:
            lines.append(list(blank))
        return lines[: self.height]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines():
            yield from line
            yield Segment.line()
