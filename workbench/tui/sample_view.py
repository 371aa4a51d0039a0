"""The sample grid: half-blocks everywhere, real pixels (Kitty / Sixel) where the terminal speaks them."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.strip import Strip
from textual.widget import Widget

from workbench.tui.image_render import HalfBlockImage


class SampleView(Widget):
    """Shows one PIL image, scaled to fit; `renderer` is "halfblock", "sixel" or "kitty"."""

    DEFAULT_CSS = "SampleView { height: 1fr; width: 1fr; }"

    def __init__(self, renderer: str = "halfblock", *, empty_text: str = "no samples yet", **kwargs):
        super().__init__(**kwargs)
        self.renderer = renderer
        self.empty_text = empty_text
        self.image: Any | None = None
        self._cached: HalfBlockImage | None = None
        self._strips: list[Strip] = []
        self._graphics: Widget | None = None

    def compose(self) -> ComposeResult:
        if self.renderer in ("sixel", "kitty"):
            from textual_image.widget import SixelImage, TGPImage

            self._graphics = (SixelImage if self.renderer == "sixel" else TGPImage)()
            self._graphics.styles.width = "1fr"
            self._graphics.styles.height = "1fr"
            yield self._graphics

    def show(self, image: Any | None) -> None:
        if image is self.image:
            return
        self.image = image
        self._cached = None
        if self._graphics is not None:
            self._graphics.image = image
        self.refresh()

    def render(self):
        return Text(self.empty_text, style="dim", justify="center") if self.image is None else ""

    def render_line(self, y: int) -> Strip:
        """Half-blocks come from strips built once per image and size: a screen re-layout costs no re-render."""
        if self._graphics is not None or self.image is None:
            return super().render_line(y)
        width, height = self.content_size
        if self._cached is None or (self._cached.width, self._cached.height) != (width, height):
            self._cached = HalfBlockImage(self.image, width, height)
            self._strips = [Strip(line, width) for line in self._cached.lines()]
        return self._strips[y] if 0 <= y < len(self._strips) else Strip.blank(width)
