"""Batches: scaling, padding, flips, epochs, shards, limit, and exact resumption from a state_dict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.config import load_config
from workbench.data import EpochOrder, InMemoryImages, build_dataset
from workbench.errors import CheckpointError, DatasetError, PluginError
from workbench.plugin_host.manager import PluginHost
from workbench.plugin_host.registry import Component

from .helpers import load


@pytest.fixture
def indexed(tmp_path):
    """An npy dataset of 50 asymmetric 6x6 grayscale images whose label is their index, and the images."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 6, 6), dtype=np.uint8)
    np.savez(tmp_path / "indexed.npz", images=images, labels=np.arange(50))
    return f"dataset.path={tmp_path / 'indexed.npz'}", torch.from_numpy(images)


def batches_of(indexed, *overrides: str, **kw):
    return load("dataset.name=npy", indexed[0], "dataset.pad_to=0", *overrides, **kw)


def as_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) * 127.5).round().to(torch.uint8)


def test_pixels_scale_to_minus_one_one_exactly(tmp_path):
    np.save(tmp_path / "p.npy", np.array([[[0, 255], [127, 128]]], dtype=np.uint8))
    x, y = load("dataset.name=npy", f"dataset.path={tmp_path / 'p.npy'}", "dataset.pad_to=0").next_batch(1)
    assert x.dtype == torch.float32 and x.shape == (1, 1, 2, 2) and y is None
    assert x.flatten().tolist() == pytest.approx([-1.0, 1.0, 127 / 127.5 - 1, 128 / 127.5 - 1], abs=1e-7)


def test_batches_are_in_range_and_labels_follow_their_images(indexed):
    batches = batches_of(indexed, "dataset.flip=false")
    for _ in range(4):
        x, y = batches.next_batch(16)
        assert x.shape == (16, 1, 6, 6) and x.device.type == "cpu" and y.dtype == torch.int64
        assert x.min() >= -1 and x.max() <= 1
        assert torch.equal(as_uint8(x)[:, 0], indexed[1][y])


def test_padding_is_centred_background(indexed):
    batches = batches_of(indexed, "dataset.pad_to=9", "dataset.flip=false")
    assert batches.image_size == 9
    x, y = batches.next_batch(8)
    assert torch.equal(as_uint8(x)[:, 0, 1:7, 1:7], indexed[1][y])  # 3 extra pixels: 1 before, 2 after
    border = torch.ones(9, 9, dtype=torch.bool)
    border[1:7, 1:7] = False
    assert (x[:, 0][:, border] == -1).all()


def test_pad_never_crops(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((2, 40, 40), dtype=np.uint8))
    assert load("dataset.name=npy", f"dataset.path={tmp_path / 'big.npy'}").image_size == 40  # pad_to = 32


def test_flips_mirror_some_images_when_on_and_none_when_off(indexed):
    originals = indexed[1]
    for flip, expect_flips in (("true", True), ("false", False), ("auto", False)):  # npy's own default: off
        batches = batches_of(indexed, f"dataset.flip={flip}")
        x, y = batches.next_batch(50)
        got = as_uint8(x)[:, 0]
        same = (got == originals[y]).flatten(1).all(1)
        mirrored = (got == originals[y].flip(-1)).flatten(1).all(1)
        assert (same | mirrored).all()
        assert bool(mirrored.any()) == expect_flips and bool(same.any())


def test_every_epoch_sees_every_image_once_in_a_new_order(indexed):
    batches = batches_of(indexed)
    labels = torch.cat([batches.next_batch(16)[1] for _ in range(25)])  # 400 = 8 epochs of 50, across edges
    epochs = labels.view(8, 50)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(50))
    assert not torch.equal(epochs[0], epochs[1])
    assert batches.epoch == 8


def test_seed_decides_the_order(indexed):
    first = batches_of(indexed, seed=1).next_batch(50)[1]
    assert torch.equal(first, batches_of(indexed, seed=1).next_batch(50)[1])
    assert not torch.equal(first, batches_of(indexed, seed=2).next_batch(50)[1])


def test_state_dict_resumes_the_same_next_batches(indexed):
    run = batches_of(indexed, "dataset.flip=true", seed=7)
    for _ in range(5):
        run.next_batch(12)
    state = json.loads(json.dumps(run.state_dict()))  # it is plain data a checkpoint can hold
    expected = [run.next_batch(12) for _ in range(6)]
    resumed = batches_of(indexed, "dataset.flip=true", seed=7)
    resumed.load_state_dict(state)
    for (x1, y1), (x2, y2) in zip(expected, (resumed.next_batch(12) for _ in range(6))):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_a_state_for_another_dataset_is_refused(indexed):
    state = batches_of(indexed).state_dict()
    with pytest.raises(CheckpointError, match="50 images but this rank's dataset has 10"):
        batches_of(indexed, "dataset.limit=10").load_state_dict(state)


def test_caller_generator_drives_flips_reproducibly(indexed):
    def run():
        batches = batches_of(indexed, "dataset.flip=true")
        gen = torch.Generator().manual_seed(3)
        return [batches.next_batch(10, generator=gen)[0] for _ in range(3)]

    assert all(torch.equal(a, b) for a, b in zip(run(), run()))


def test_shards_are_disjoint_and_cover_the_dataset(indexed):
    shards = [batches_of(indexed, rank=r, world_size=3) for r in range(3)]
    assert [s.num_images for s in shards] == [17, 17, 16]
    seen = [set(torch.cat([s.next_batch(s.num_images)[1]]).tolist()) for s in shards]
    assert seen[0] == set(range(0, 50, 3)) and seen[1] == set(range(1, 50, 3))
    assert set().union(*seen) == set(range(50)) and sum(len(s) for s in seen) == 50
    assert shards[2].description.endswith("; shard 2 of 3")


def test_limit_keeps_the_first_images(indexed):
    batches = batches_of(indexed, "dataset.limit=7")
    assert batches.num_images == 7 and batches.description.endswith("; first 7 (dataset.limit)")
    assert set(batches.next_batch(7)[1].tolist()) == set(range(7))
    assert torch.equal(batches.real_images(3)[:, 0], indexed[1][:3])


def test_too_few_images_for_the_ranks(indexed):
    with pytest.raises(DatasetError, match="3 images cannot be shared by 4 ranks"):
        batches_of(indexed, "dataset.limit=3", rank=0, world_size=4)


def test_epoch_order_crosses_epochs_inside_one_take():
    order = EpochOrder(5, seed=0)
    indices, flips = order.take(12)
    assert sorted(indices[:5].tolist()) == sorted(indices[5:10].tolist()) == list(range(5))
    assert (order.epoch, order.position) == (2, 2) and flips.dtype == torch.bool


def test_synthetic_is_deterministic_and_labelled():
    a = load("dataset.name=synthetic", "dataset.count=64")
    b = load("dataset.name=synthetic", "dataset.count=64")
    c = load("dataset.name=synthetic", "dataset.count=64", "dataset.seed=1")
    assert torch.equal(a.real_images(64), b.real_images(64)) and not torch.equal(a.real_images(64), c.real_images(64))
    assert a.image_size == 32 and a.has_labels and set(a.labels.tolist()) == {0, 1, 2, 3}
    rgb = load("dataset.name=synthetic", "dataset.channels=3", "dataset.size=16", "dataset.pad_to=0")
    assert (rgb.channels, rgb.image_size, rgb.num_images) == (3, 16, 512)


def test_a_third_party_factory_returning_garbage_is_named():
    host = PluginHost(load_entry_points=False)
    host.registries["dataset"].add(Component("dataset", "broken", lambda: torch.zeros(3, 8, 8), "acme-data"))
    host.registries["dataset"].add(Component("dataset", "floaty", lambda: InMemoryImages(
        "x", images=torch.zeros(2, 1, 8, 8)), "acme-data"))
    host.registries["dataset"].add(Component("dataset", "crashy", lambda: 1 / 0, "acme-data"))
    for name, message in (("broken", "returned Tensor, not a workbench.data"),
                          ("floaty", "returned images torch.float32 .* must be a uint8 tensor"), ("crashy", "failed to build: ZeroDivisionError")):
        cfg = load_config(None, [f"dataset.name={name}"], host=host, search_cwd=False)
        with pytest.raises(PluginError, match=f"dataset '{name}' \\(plugin acme-data\\) {message}"):
            build_dataset(cfg.dataset)


def test_mirror_table_and_where_flips_give_the_same_batches(indexed, monkeypatch):
    fast = batches_of(indexed, "dataset.flip=true")
    monkeypatch.setattr("workbench.data.batches.InMemoryBatches.MIRROR_TABLE_MAX_BYTES", 0)
    plain = batches_of(indexed, "dataset.flip=true")
    assert fast.mirrored and not plain.mirrored
    for _ in range(5):
        (x1, y1), (x2, y2) = fast.next_batch(20), plain.next_batch(20)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(fast.real_images(50), plain.real_images(50))
