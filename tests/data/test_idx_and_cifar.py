"""MNIST-style IDX files and CIFAR-10 pickles, in the formats they ship in, read through build_dataset."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from workbench.errors import DatasetError

from .helpers import load, write_cifar, write_mnist


def unpadded(batches) -> torch.Tensor:
    """The first images of a 28x28 dataset padded to 32, with the padding cut off again."""
    return batches.real_images(batches.num_images)[:, :, 2:30, 2:30]


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "uncompressed"])
def test_mnist_flat_folder_reads_images_and_labels_in_file_order(places, tmp_path, gz):
    arrays = write_mnist(tmp_path / "mnist", gz=gz)
    batches = load("dataset.name=mnist", f"dataset.root={tmp_path / 'mnist'}", "dataset.pad_to=32")
    assert (batches.num_images, batches.channels, batches.image_size) == (20, 1, 32)
    assert torch.equal(unpadded(batches)[:, 0], torch.from_numpy(arrays["train"]))
    assert batches.has_labels
    assert torch.equal(batches.labels.cpu(), torch.from_numpy(arrays["train_labels"]).long())
    assert batches.description == f"MNIST train, 20 images from {tmp_path / 'mnist'}"
    assert places.download.calls == []


def test_torchvision_layout_and_dotted_names_are_accepted(places, tmp_path):
    arrays = write_mnist(tmp_path / "root" / "FashionMNIST" / "raw", dotted=True)
    batches = load("dataset.name=fashion-mnist", f"dataset.root={tmp_path / 'root'}", "dataset.split=test",
                   "dataset.pad_to=32")
    assert batches.num_images == 8
    assert torch.equal(unpadded(batches)[:, 0], torch.from_numpy(arrays["t10k"]))
    assert "Fashion-MNIST test, 8 images" in batches.description


def test_split_all_concatenates_train_then_test(places, tmp_path):
    arrays = write_mnist(tmp_path / "m")
    batches = load("dataset.name=mnist", f"dataset.root={tmp_path / 'm'}", "dataset.split=all",
                   "dataset.pad_to=32")
    assert batches.num_images == 28
    assert torch.equal(unpadded(batches)[:, 0], torch.from_numpy(np.concatenate([arrays["train"], arrays["t10k"]])))


def test_cifar10_python_batches(places, tmp_path):
    arrays = write_cifar(tmp_path / "c")
    batches = load("dataset.name=cifar10", f"dataset.root={tmp_path / 'c'}")
    assert (batches.num_images, batches.channels, batches.image_size) == (20, 3, 32)
    assert torch.equal(batches.real_images(20), torch.from_numpy(arrays["train"]))
    assert torch.equal(batches.labels.cpu(), torch.from_numpy(arrays["train_labels"]))
    assert batches.class_names[0] == "airplane" and len(batches.class_names) == 10
    assert batches.flip is True  # CIFAR-10's own default
    test = load("dataset.name=cifar10", f"dataset.root={arrays['folder']}", "dataset.split=test")
    assert torch.equal(test.real_images(4), torch.from_numpy(arrays["test"]))


def test_cifar_pixel_order_is_red_plane_then_green_then_blue(places, tmp_path):
    arrays = write_cifar(tmp_path / "c")
    raw = pickle.load(open(arrays["folder"] / "data_batch_1", "rb"), encoding="bytes")[b"data"]
    batches = load("dataset.name=cifar10", f"dataset.root={tmp_path / 'c'}")
    first = batches.real_images(1)[0]
    assert torch.equal(first[0].flatten(), torch.from_numpy(raw[0, :1024]))  # red, rows of 32
    assert torch.equal(first[2].flatten(), torch.from_numpy(raw[0, 2048:]))  # blue


# -- corrupted files: one line naming the file ------------------------------------------------------


def expect_error(match: str, *overrides: str) -> str:
    with pytest.raises(DatasetError, match=match) as info:
        load(*overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_idx_with_bad_magic_number(places, tmp_path):
    write_mnist(tmp_path / "m", gz=False)
    path = tmp_path / "m" / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[3] = 0x01  # 2049, the labels' magic, in the images file
    path.write_bytes(bytes(data))
    message = expect_error("bad magic number 2049", "dataset.name=mnist", f"dataset.root={tmp_path / 'm'}")
    assert str(path) in message and "2051" in message


def test_idx_truncated(places, tmp_path):
    write_mnist(tmp_path / "m", gz=False)
    path = tmp_path / "m" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    message = expect_error("truncated", "dataset.name=mnist", f"dataset.root={tmp_path / 'm'}")
    assert str(path) in message and "20x28x28" in message


def test_truncated_gzip(places, tmp_path):
    write_mnist(tmp_path / "m")
    path = tmp_path / "m" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    expect_error(r"train-labels-idx1-ubyte\.gz is a corrupted or truncated gzip", "dataset.name=mnist",
                 f"dataset.root={tmp_path / 'm'}")


def test_idx_image_and_label_counts_must_match(places, tmp_path):
    write_mnist(tmp_path / "m")
    (tmp_path / "m" / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3])))
    expect_error("has 20 images but .* has 3 labels", "dataset.name=mnist", f"dataset.root={tmp_path / 'm'}")


def test_corrupted_cifar_pickle(places, tmp_path):
    arrays = write_cifar(tmp_path / "c")
    path = arrays["folder"] / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    message = expect_error("not a readable CIFAR-10 pickle", "dataset.name=cifar10", f"dataset.root={tmp_path / 'c'}")
    assert str(path) in message


def test_cifar_pickle_without_data_key(places, tmp_path):
    arrays = write_cifar(tmp_path / "c")
    with open(arrays["folder"] / "data_batch_2", "wb") as f:
        pickle.dump({b"labels": [1, 2]}, f, protocol=2)
    expect_error("no b'data' and b'labels'", "dataset.name=cifar10", f"dataset.root={tmp_path / 'c'}")


def test_cifar_pickle_that_would_run_code_is_refused(places, tmp_path):
    arrays = write_cifar(tmp_path / "c")

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(arrays["folder"] / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Exploit(), b"labels": []}, f, protocol=2)
    expect_error(r"refusing to load \w+\.print", "dataset.name=cifar10", f"dataset.root={tmp_path / 'c'}")
