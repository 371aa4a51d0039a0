"""The image-folder dataset: PNG/JPEG/WebP trees, resizing, classes, streaming, and broken files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.errors import DatasetError

from .helpers import load


def save(path, pixels: np.ndarray, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **kw)


def rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_png_folder_loads_pixels_exactly_in_path_order(tmp_path):
    pictures = [rgb(16, 16, i) for i in range(5)]
    for i, p in enumerate(pictures):
        save(tmp_path / "imgs" / f"{i:02d}.png", p)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / ".hidden.png").write_bytes(b"junk")
    batches = load("dataset.name=image-folder", f"dataset.path={tmp_path / 'imgs'}", "dataset.pad_to=0")
    assert (batches.num_images, batches.channels, batches.image_size) == (5, 3, 16)
    expected = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2)
    assert torch.equal(batches.real_images(5), expected)
    assert not batches.has_labels
    assert batches.flip is True  # photos: flips on by default
    assert batches.description == f"image folder {tmp_path / 'imgs'}, 5 RGB images"


def test_class_subfolders_become_labels(tmp_path):
    for cls, n in (("cat", 2), ("dog", 3)):
        for i in range(n):
            save(tmp_path / "pets" / cls / f"{i}.jpg", rgb(8, 8, i), quality=95)
    save(tmp_path / "pets" / "dog" / "extra.webp", rgb(8, 8, 9))
    batches = load("dataset.name=image-folder", f"dataset.path={tmp_path / 'pets'}", "dataset.pad_to=0")
    assert batches.class_names == ("cat", "dog")
    assert batches.labels.tolist() == [0, 0, 1, 1, 1, 1]


def test_size_resizes_the_shorter_side_then_center_crops(tmp_path):
    # 40 x 80 (h x w): left half black, a white band in the middle quarter-columns, right part grey.
    pixels = np.zeros((40, 80), dtype=np.uint8)
    pixels[:, 30:50] = 255
    pixels[:, 50:] = 128
    save(tmp_path / "wide" / "a.png", pixels)
    batches = load("dataset.name=image-folder", f"dataset.path={tmp_path / 'wide'}", "dataset.size=20",
                   "dataset.grayscale=true", "dataset.pad_to=0")
    image = batches.real_images(1)[0, 0]  # 40x80 -> 20x40 -> centre 20x20 = original columns 20..60
    assert image.shape == (20, 20) and batches.channels == 1
    assert image[:, 0:3].float().mean() < 40  # black part
    assert image[:, 7:13].float().mean() > 230  # white band in the middle
    assert 100 < image[:, 17:].float().mean() < 160  # grey on the right


def test_transparent_png_is_composited_on_white(tmp_path):
    pixels = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black
    save(tmp_path / "t" / "a.png", pixels)
    batches = load("dataset.name=image-folder", f"dataset.path={tmp_path / 't'}", "dataset.pad_to=0")
    assert batches.real_images(1).min().item() == 255


def test_streaming_gives_the_same_batches_as_in_memory(tmp_path):
    for i in range(12):
        save(tmp_path / "s" / ("a" if i % 2 else "b") / f"{i:02d}.png", rgb(8, 8, i))
    common = ["dataset.name=image-folder", f"dataset.path={tmp_path / 's'}", "dataset.pad_to=10"]
    in_memory = load(*common)
    streamed = load(*common, "dataset.max_memory_mb=0", "dataset.workers=1")
    assert type(streamed).__name__ == "StreamingBatches" and "streamed from disk" in streamed.description
    assert (streamed.channels, streamed.image_size, streamed.num_images) == (3, 10, 12)
    try:
        for batch_size in (5, 5, 7):  # crosses epoch ends and a batch size change
            (x1, y1), (x2, y2) = in_memory.next_batch(batch_size), streamed.next_batch(batch_size)
            assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert torch.equal(streamed.real_images(3), in_memory.real_images(3))
    finally:
        streamed.close()


# -- bad folders and files ------------------------------------------------------------------------


def error(*overrides: str) -> str:
    with pytest.raises(DatasetError) as info:
        load("dataset.name=image-folder", *overrides)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_and_empty_folders(tmp_path):
    assert "does not exist" in error(f"dataset.path={tmp_path / 'nope'}")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert "holds no images" in error(f"dataset.path={tmp_path / 'empty'}")


def test_truncated_image_names_the_file(tmp_path):
    save(tmp_path / "f" / "good.png", rgb(16, 16, 0))
    save(tmp_path / "f" / "bad.png", rgb(16, 16, 1))
    data = (tmp_path / "f" / "bad.png").read_bytes()
    (tmp_path / "f" / "bad.png").write_bytes(data[: len(data) // 2])
    message = error(f"dataset.path={tmp_path / 'f'}")
    assert message.startswith(f"cannot read image {tmp_path / 'f' / 'bad.png'}:") and "replace or remove" in message


def test_unreadable_image_names_the_file(tmp_path):
    save(tmp_path / "f" / "a.png", rgb(4, 4, 0))
    (tmp_path / "f" / "b.jpg").write_bytes(b"this is no jpeg")
    assert f"cannot read image {tmp_path / 'f' / 'b.jpg'}" in error(f"dataset.path={tmp_path / 'f'}")


def test_mixed_sizes_need_a_size(tmp_path):
    save(tmp_path / "m" / "a.png", rgb(16, 16, 0))
    save(tmp_path / "m" / "b.png", rgb(20, 16, 1))
    message = error(f"dataset.path={tmp_path / 'm'}")
    assert "differ in size" in message and "b.png is 20x16" in message and "dataset.size" in message
    streamed = error(f"dataset.path={tmp_path / 'm'}", "dataset.max_memory_mb=0")
    assert "differ in size" in streamed
    fixed = load("dataset.name=image-folder", f"dataset.path={tmp_path / 'm'}", "dataset.size=12",
                 "dataset.pad_to=32")
    assert fixed.image_size == 32 and fixed.num_images == 2  # 12x12, then padded to pad_to


def test_non_square_images_are_refused_with_the_fix(tmp_path):
    save(tmp_path / "r" / "a.png", rgb(48, 64, 0))
    message = error(f"dataset.path={tmp_path / 'r'}")
    assert "48x64" in message and "not square" in message and "dataset.size=N" in message


def test_path_is_required_before_anything_runs():
    from workbench.config import load_config
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match="set dataset.path"):
        load_config(None, ["dataset.name=image-folder"], search_cwd=False)


def test_a_broken_file_met_while_streaming_is_one_line_naming_it(tmp_path):
    save(tmp_path / "f" / "a.png", rgb(16, 16, 0))
    (tmp_path / "f" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    streamed = load("dataset.name=image-folder", f"dataset.path={tmp_path / 'f'}", "dataset.size=16",
                    "dataset.max_memory_mb=0", "dataset.workers=1")  # size given: no header scan up front
    try:
        with pytest.raises(DatasetError) as info:
            streamed.next_batch(2)
    finally:
        streamed.close()
    assert str(info.value).startswith(f"cannot read image {tmp_path / 'f' / 'b.png'}:")
    assert "\n" not in str(info.value)
