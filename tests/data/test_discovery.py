"""Where mnist / fashion-mnist / cifar10 are looked for, in which order, and what the user is told when
nothing is found. The `places` fixture makes every place empty and the download a recorder."""

from __future__ import annotations

import os

import pytest

from workbench.errors import DatasetError

from .helpers import load, write_cifar, write_mnist


def origin(batches) -> str:
    return batches.description.split(" from ", 1)[1]


def test_search_order_root_env_cache_system_then_download(places, tmp_path, monkeypatch):
    root, env = tmp_path / "root", tmp_path / "env"
    write_mnist(root, seed=1)
    write_mnist(env / "mnist", seed=2)
    write_mnist(places.cache / "MNIST" / "raw", seed=3)  # where a torchvision download lands
    write_mnist(places.system / "mnist", seed=4)  # like Debian's /usr/share/datasets/<name>
    monkeypatch.setenv("DDPM_WORKBENCH_DATA", str(env))

    assert origin(load("dataset.name=mnist", f"dataset.root={root}")) == str(root)
    empty_root = tmp_path / "empty"
    empty_root.mkdir()
    assert origin(load("dataset.name=mnist", f"dataset.root={empty_root}")) == str(env / "mnist")
    monkeypatch.delenv("DDPM_WORKBENCH_DATA")
    assert origin(load("dataset.name=mnist")) == str(places.cache / "MNIST" / "raw")
    for f in (places.cache / "MNIST" / "raw").iterdir():
        f.unlink()
    assert origin(load("dataset.name=mnist")) == str(places.system / "mnist")
    assert places.download.calls == []
    for f in (places.system / "mnist").iterdir():
        f.unlink()
    places.download.writer = lambda name, target: write_mnist(target / name / "raw", seed=5)
    downloaded = load("dataset.name=mnist")
    assert places.download.calls == [("MNIST", places.cache, (True,))]
    assert origin(downloaded) == str(places.cache / "MNIST" / "raw")


def test_env_var_may_list_several_folders(places, tmp_path, monkeypatch):
    write_mnist(tmp_path / "second" / "MNIST" / "raw")
    monkeypatch.setenv("DDPM_WORKBENCH_DATA", os.pathsep.join([str(tmp_path / "first"), str(tmp_path / "second")]))
    assert origin(load("dataset.name=mnist")) == str(tmp_path / "second" / "MNIST" / "raw")


def test_shared_folders_must_name_the_dataset(places, tmp_path, monkeypatch):
    """MNIST and Fashion-MNIST files have the same names, so loose files in a shared folder are not taken
    for either; only dataset.root may point straight at them."""
    write_mnist(tmp_path / "shared")
    monkeypatch.setenv("DDPM_WORKBENCH_DATA", str(tmp_path / "shared"))
    with pytest.raises(DatasetError, match="MNIST train files"):
        load("dataset.name=mnist", "dataset.download=false")
    assert origin(load("dataset.name=mnist", f"dataset.root={tmp_path / 'shared'}")) == str(tmp_path / "shared")


def test_download_goes_to_root_when_root_is_set(places, tmp_path):
    root = tmp_path / "wanted-here"
    places.download.writer = lambda name, target: write_cifar(target)
    batches = load("dataset.name=cifar10", f"dataset.root={root}", "dataset.split=all")
    assert places.download.calls == [("CIFAR10", root, (True, False))]
    assert batches.num_images == 24 and origin(batches) == str(root / "cifar-10-batches-py")


def test_all_places_failed_is_one_line_listing_them_and_the_fixes(places):
    with pytest.raises(DatasetError) as info:
        load("dataset.name=mnist")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("MNIST train files (train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]) "
                              "not found; looked in dataset.root (not set), $DDPM_WORKBENCH_DATA (not set), "
                              f"{places.cache}, {places.system}; download into {places.cache} failed (RuntimeError: "
                              "Error downloading train-images-idx3-ubyte.gz: Tried")
    assert "fix: set dataset.root to a folder holding" in message
    assert "set dataset.download = true on a machine with network access" in message


def test_download_false_never_downloads(places):
    with pytest.raises(DatasetError, match=r"download not attempted \(dataset.download = false\)"):
        load("dataset.name=cifar10", "dataset.download=false")
    assert places.download.calls == []


# -- fashion-mnist: full set when found offline, else the embedded sample ---------------------------


def test_fashion_mnist_prefers_the_system_copy(places):
    write_mnist(places.system / "fashion-mnist")  # the layout of Debian's dataset-fashion-mnist
    batches = load("dataset.name=fashion-mnist")
    assert origin(batches) == str(places.system / "fashion-mnist") and batches.num_images == 20


def test_fashion_mnist_falls_back_to_the_embedded_sample_without_downloading(places):
    batches = load()  # the default config: fashion-mnist
    assert batches.num_images == 10000
    assert batches.description.startswith("embedded Fashion-MNIST sample (10000 images; the full dataset was not found")
    assert places.download.calls == []


def test_fashion_mnist_download_true_downloads_and_does_not_hide_a_failure(places):
    with pytest.raises(DatasetError, match=r"Fashion-MNIST train files .* download into .* failed"):
        load("dataset.name=fashion-mnist", "dataset.download=true")
    assert [c[0] for c in places.download.calls] == ["FashionMNIST"]
    places.download.writer = lambda name, target: write_mnist(target / name / "raw")
    batches = load("dataset.name=fashion-mnist", "dataset.download=true")
    assert origin(batches) == str(places.cache / "FashionMNIST" / "raw")


def test_fashion_mnist_without_fallback_or_for_test_split_says_how_to_get_it(places):
    for overrides in (["dataset.sample_fallback=false"], ["dataset.split=test"]):
        with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
            load("dataset.name=fashion-mnist", *overrides)
