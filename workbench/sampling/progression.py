"""Denoising progressions: x_t and the predicted x0 over the reverse process, as a GIF and as a PNG strip.

`ProgressionRecorder` is a sampler callback: at evenly spaced steps it keeps x_t and the model's current
x0 prediction for the first few images of the first batch, as device tensors (a clone, no host sync inside
the step loop); everything is moved to the CPU once sampling is done. Frames: `frames` evenly spaced steps
(the first, pure noise, and the last included; every step when the sampler has fewer), plus the final image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

from workbench.pictures import to_uint8
from workbench.sampling.defaults import DEFAULT_FRAMES, DEFAULT_PROGRESSION_IMAGES, DEFAULT_STRIP_COLUMNS
from workbench.sampling.layout import BAND_VALUE, labelled_grid, stack, titled, upscale

FRAME_MS = 80
FINAL_FRAME_MS = 1500      # hold the finished image before the GIF loops


def frame_steps(total_steps: int, frames: int) -> list[int]:
    """Indices 0..total_steps-1 of `min(frames, total_steps)` evenly spaced steps, first and last included."""
    count = max(1, min(int(frames), int(total_steps)))
    if count == 1:
        return [0]
    return sorted({int(round(i * (total_steps - 1) / (count - 1))) for i in range(count)})


def evenly_chosen(count_available: int, wanted: int) -> list[int]:
    """`wanted` evenly spaced positions out of `count_available`, first and last included."""
    return frame_steps(count_available, wanted)


def as_step_label(t) -> str:
    if isinstance(t, torch.Tensor):
        t = t.flatten()[0].item()
    value = float(t)
    return f"t={int(value)}" if value == int(value) else f"t={value:.1f}"


@dataclass
class Frame:
    label: str              # "t=999", ..., "final"
    x_t: torch.Tensor       # uint8 (k, C, H, W) on the CPU once finished
    pred_x0: torch.Tensor


class ProgressionRecorder:
    """Sampler callback keeping x_t and predicted x0 of the first `images` samples at chosen steps."""

    def __init__(self, frames: int = DEFAULT_FRAMES, images: int = DEFAULT_PROGRESSION_IMAGES):
        self.frame_count = frames
        self.images = images
        self.wanted: set[int] | None = None  # chosen at the first step, from the sampler's own step count
        self._raw: list[tuple[object, torch.Tensor, torch.Tensor]] = []
        self.frames: list[Frame] = []

    def __call__(self, step) -> None:
        if self.wanted is None:
            self.wanted = set(frame_steps(step.total, self.frame_count))
        if step.index not in self.wanted:
            return
        x_t = step.x_t[: self.images].detach().clone()
        pred = step.pred_x0 if getattr(step, "pred_x0", None) is not None else step.x_t
        self._raw.append((step.t, x_t, pred[: self.images].detach().clone()))

    def finish(self, final_images: torch.Tensor) -> list[Frame]:
        """Move the kept tensors to the CPU (the one sync) and append the final image as the last frame."""
        self.frames = [Frame(as_step_label(t), to_uint8(x), to_uint8(p)) for t, x, p in self._raw]
        final = final_images[: self.images]
        final = final if final.dtype == torch.uint8 else to_uint8(final)
        self.frames.append(Frame("final", final.cpu(), final.cpu()))
        self._raw.clear()
        return self.frames


def default_scale(image_size: int) -> int:
    """Enlarge small images so a GIF frame is comfortable to look at (32 px -> 2x)."""
    return max(1, round(64 / max(1, image_size)))


def render_frame(frame: Frame, index: int, count: int, scale: int) -> np.ndarray:
    """One GIF frame: x_t and predicted x0 side by side, each a grid of the tracked images, with a heading."""
    x_panel = titled(labelled_grid(upscale(frame.x_t, scale), _columns(frame.x_t.shape[0])), "x_t")
    p_panel = titled(labelled_grid(upscale(frame.pred_x0, scale), _columns(frame.x_t.shape[0])), "predicted x0")
    heading = f"{frame.label}  ({index + 1}/{count})"
    return titled(stack([x_panel, p_panel], axis=1, gap=6), heading)


def pad_to(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """`picture` padded with white on the right and bottom to (height, width)."""
    out = np.full((height, width, picture.shape[2]), BAND_VALUE, dtype=np.uint8)
    out[: picture.shape[0], : picture.shape[1]] = picture
    return out


def _columns(n: int) -> int:
    return max(1, int(np.ceil(np.sqrt(n))))


def _to_pil(picture: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(picture[:, :, 0] if picture.shape[2] == 1 else picture))


def gif_bytes(frames: list[Frame], scale: int = 1) -> bytes:
    """An animated, looping GIF: one picture per frame, the final one held longer."""
    rendered = [render_frame(f, i, len(frames), scale) for i, f in enumerate(frames)]
    # A long heading can widen one frame; every frame of a GIF must have the size of the first.
    height = max(r.shape[0] for r in rendered)
    width = max(r.shape[1] for r in rendered)
    pictures = [_to_pil(pad_to(r, height, width)) for r in rendered]
    durations = [FRAME_MS] * (len(pictures) - 1) + [FINAL_FRAME_MS]
    buffer = io.BytesIO()
    # disposal=1 and no optimisation: every frame is stored whole, so frame counts stay exact.
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=durations,
                     loop=0, optimize=False, disposal=1)
    return buffer.getvalue()


def strip_picture(frames: list[Frame], columns: int = DEFAULT_STRIP_COLUMNS, scale: int = 1) -> np.ndarray:
    """A PNG strip: `columns` frames left to right (t labels on top); per image a row of x_t and a row of
    predicted x0."""
    chosen = [frames[i] for i in evenly_chosen(len(frames), columns)]
    k = chosen[0].x_t.shape[0]
    tiles, row_labels = [], []
    for s in range(k):
        tiles.extend(f.x_t[s] for f in chosen)
        tiles.extend(f.pred_x0[s] for f in chosen)
        row_labels.extend(["x_t", "pred x0"])
    grid = labelled_grid(upscale(torch.stack(tiles), scale), len(chosen),
                         column_labels=[f.label for f in chosen], row_labels=row_labels)
    return grid
