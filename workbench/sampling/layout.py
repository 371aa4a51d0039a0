"""Labelled picture layouts: grids with column headings, row labels and titles, stacked into strips.

Builds on `workbench.pictures.make_grid` (tiles with 2-px grey padding); everything here is uint8 numpy
(H, W, C) with C = 1 or 3, the same form `grid.png_bytes` saves. Text is drawn with PIL's built-in font.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from workbench.pictures import PADDING, PAD_VALUE, make_grid

BAND_VALUE = 255  # white bands behind labels
TEXT_VALUE = 0    # black text
FONT_SIZE = 10
LINE_HEIGHT = 14  # one line of FONT_SIZE text with a little air


@lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def text_width(text: str) -> int:
    left, _, right, _ = _font().getbbox(text)
    return int(right - left)


def upscale(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour enlargement of uint8 (N, C, H, W) by an integer factor (pixels stay crisp)."""
    if factor <= 1:
        return images
    return images.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def band(width: int, height: int, channels: int) -> np.ndarray:
    return np.full((height, width, channels), BAND_VALUE, dtype=np.uint8)


def draw_text(canvas: np.ndarray, items: list[tuple[int, int, str]]) -> np.ndarray:
    """Draw each (x, y, text) onto a copy of `canvas` (x, y: top-left corner of the text)."""
    from PIL import Image, ImageDraw

    channels = canvas.shape[2]
    image = Image.fromarray(np.ascontiguousarray(canvas[:, :, 0] if channels == 1 else canvas))
    draw = ImageDraw.Draw(image)
    fill = TEXT_VALUE if channels == 1 else (TEXT_VALUE,) * 3
    for x, y, text in items:
        draw.text((x, y), text, font=_font(), fill=fill)
    out = np.asarray(image, dtype=np.uint8)
    return out[:, :, None] if channels == 1 else out.copy()


def titled(picture: np.ndarray, title: str, *, centre: bool = False) -> np.ndarray:
    """`picture` with a one-line white title band above it (widened if the title is wider)."""
    height, width, channels = picture.shape
    width_needed = text_width(title) + 2 * PADDING
    if width_needed > width:
        picture = pad_right(picture, width_needed)
        width = width_needed
    top = band(width, LINE_HEIGHT, channels)
    x = (width - text_width(title)) // 2 if centre else PADDING
    top = draw_text(top, [(x, 1, title)])
    return np.concatenate([top, picture], axis=0)


def pad_right(picture: np.ndarray, width: int, value: int = BAND_VALUE) -> np.ndarray:
    height, current, channels = picture.shape
    if current >= width:
        return picture
    extra = np.full((height, width - current, channels), value, dtype=np.uint8)
    return np.concatenate([picture, extra], axis=1)


def labelled_grid(tiles: torch.Tensor, ncol: int, *, column_labels: list[str] | None = None,
                  row_labels: list[str] | None = None) -> np.ndarray:
    """uint8 (N, C, H, W) tiles in rows of `ncol`, with optional headings over the columns and labels left
    of the rows. Tiles are laid out as `make_grid` does (2-px grey padding)."""
    grid = make_grid(tiles, nrow=ncol)
    _, _, tile_h, tile_w = tiles.shape
    channels = grid.shape[2]
    if row_labels:
        gutter_w = max(text_width(label) for label in row_labels) + 2 * PADDING
        gutter = band(gutter_w, grid.shape[0], channels)
        items = [(PADDING, PADDING + r * (tile_h + PADDING) + (tile_h - LINE_HEIGHT) // 2 + 1, label)
                 for r, label in enumerate(row_labels)]
        grid = np.concatenate([draw_text(gutter, items), grid], axis=1)
    else:
        gutter_w = 0
    if column_labels:
        header = band(grid.shape[1], LINE_HEIGHT, channels)
        items = []
        for c, label in enumerate(column_labels):
            centre = gutter_w + PADDING + c * (tile_w + PADDING) + tile_w // 2
            items.append((max(gutter_w, centre - text_width(label) // 2), 1, label))
        grid = np.concatenate([draw_text(header, items), grid], axis=0)
    return grid


def stack(pictures: list[np.ndarray], *, axis: int, gap: int = 4, value: int = BAND_VALUE) -> np.ndarray:
    """Pictures one below the other (axis=0) or side by side (axis=1), aligned top-left, `gap` px apart."""
    channels = max(p.shape[2] for p in pictures)
    pictures = [np.repeat(p, 3, axis=2) if p.shape[2] < channels else p for p in pictures]
    other = 1 - axis
    size = max(p.shape[other] for p in pictures)
    parts = []
    for i, picture in enumerate(pictures):
        if picture.shape[other] < size:
            pad_shape = list(picture.shape)
            pad_shape[other] = size - picture.shape[other]
            picture = np.concatenate([picture, np.full(pad_shape, value, dtype=np.uint8)], axis=other)
        if i and gap:
            gap_shape = list(picture.shape)
            gap_shape[axis] = gap
            parts.append(np.full(gap_shape, value, dtype=np.uint8))
        parts.append(picture)
    return np.concatenate(parts, axis=axis)


__all__ = ["PAD_VALUE", "labelled_grid", "stack", "titled", "upscale", "text_width", "draw_text", "band"]
