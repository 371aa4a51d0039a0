"""The npy dataset: every documented layout and value range, labels from .npz, and the arrays it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import DatasetError

from .helpers import load


@pytest.fixture
def pixels() -> np.ndarray:
    """uint8 (6, 3, 8, 8): the expected result, channels first."""
    return np.random.default_rng(0).integers(0, 256, size=(6, 3, 8, 8), dtype=np.uint8)


def loaded(path, *overrides: str) -> torch.Tensor:
    batches = load("dataset.name=npy", f"dataset.path={path}", "dataset.pad_to=0", *overrides)
    return batches.real_images(batches.num_images)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_uint8_layouts(tmp_path, pixels, layout):
    array = pixels if layout == "NCHW" else pixels.transpose(0, 2, 3, 1)
    np.save(tmp_path / "a.npy", array)
    assert torch.equal(loaded(tmp_path / "a.npy"), torch.from_numpy(pixels))
    assert torch.equal(loaded(tmp_path / "a.npy", f"dataset.layout={layout}"), torch.from_numpy(pixels))


def test_grayscale_nhw(tmp_path, pixels):
    np.save(tmp_path / "g.npy", pixels[:, 0])
    batches = load("dataset.name=npy", f"dataset.path={tmp_path / 'g.npy'}", "dataset.pad_to=32")
    assert (batches.channels, batches.image_size) == (1, 32)  # 8x8 padded
    assert torch.equal(batches.real_images(6)[:, 0, 12:20, 12:20], torch.from_numpy(pixels[:, 0]))
    assert batches.flip is False


@pytest.mark.parametrize("scale", ["unit", "signed"])
def test_float_ranges(tmp_path, pixels, scale):
    values = pixels.astype(np.float32) / 255.0
    if scale == "signed":
        values = values * 2.0 - 1.0
    np.save(tmp_path / "f.npy", values)
    assert torch.equal(loaded(tmp_path / "f.npy"), torch.from_numpy(pixels))


def test_npz_with_named_arrays_and_labels(tmp_path, pixels):
    np.savez_compressed(tmp_path / "d.npz", images=pixels.transpose(0, 2, 3, 1), labels=np.arange(6))
    batches = load("dataset.name=npy", f"dataset.path={tmp_path / 'd.npz'}", "dataset.pad_to=0")
    assert torch.equal(batches.real_images(6), torch.from_numpy(pixels))
    assert batches.labels.tolist() == list(range(6))
    np.savez(tmp_path / "k.npz", pics=pixels, classes=np.arange(6) % 2)
    batches = load("dataset.name=npy", f"dataset.path={tmp_path / 'k.npz'}", "dataset.key=pics",
                   "dataset.labels_key=classes")
    assert batches.labels.tolist() == [0, 1, 0, 1, 0, 1]


def test_size_resizes_and_crops_arrays(tmp_path):
    array = np.zeros((2, 16, 24), dtype=np.uint8)
    array[:, :, 12:] = 255
    np.save(tmp_path / "w.npy", array)
    images = loaded(tmp_path / "w.npy", "dataset.size=8")
    assert images.shape == (2, 1, 8, 8)
    assert images[:, :, :, :3].max() < 40 and images[:, :, :, 5:].min() > 215


def error(path, *overrides: str) -> str:
    with pytest.raises(DatasetError) as info:
        load("dataset.name=npy", f"dataset.path={path}", *overrides)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    return str(info.value)


def test_wrong_rank(tmp_path):
    np.save(tmp_path / "r.npy", np.zeros((4, 8), dtype=np.uint8))
    assert "rank 2" in error(tmp_path / "r.npy")


def test_wrong_dtype(tmp_path):
    np.save(tmp_path / "b.npy", np.zeros((4, 8, 8), dtype=np.complex64))
    assert "dtype complex64" in error(tmp_path / "b.npy")
    np.save(tmp_path / "o.npy", np.array([None] * 4, dtype=object), allow_pickle=True)
    assert "cannot read" in error(tmp_path / "o.npy")


def test_values_out_of_range(tmp_path):
    np.save(tmp_path / "f.npy", np.full((2, 4, 4), 200.0, dtype=np.float32))
    assert "divide 0..255 values by 255" in error(tmp_path / "f.npy")
    np.save(tmp_path / "i.npy", np.full((2, 4, 4), 300, dtype=np.int32))
    assert "values 300..300" in error(tmp_path / "i.npy")
    np.save(tmp_path / "n.npy", np.full((2, 4, 4), np.nan, dtype=np.float32))
    assert "NaN" in error(tmp_path / "n.npy")


def test_four_channels_and_bad_labels(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((2, 8, 8, 4), dtype=np.uint8))
    assert "4 channels" in error(tmp_path / "c.npy")
    np.savez(tmp_path / "l.npz", images=np.zeros((3, 8, 8), dtype=np.uint8), labels=np.arange(2))
    assert "one per image" in error(tmp_path / "l.npz")


def test_corrupted_and_missing_files(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((100, 8, 8), dtype=np.uint8))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:1000])
    assert "cannot read" in error(tmp_path / "t.npy")
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04 garbage")
    assert "cannot read" in error(tmp_path / "z.npz")
    assert "does not exist" in error(tmp_path / "missing.npy")
    np.savez(tmp_path / "names.npz", a=np.zeros((2, 4, 4)), b=np.zeros(2))
    assert "set dataset.key" in error(tmp_path / "names.npz")
