"""A `dataset.root` the user set must exist: a typo is an error naming it, never a silent fall-back to
another copy (the system's Fashion-MNIST) or to the embedded sample. Only an unset root searches the other
places; with download = true a root that does not exist yet is where the download goes."""

from __future__ import annotations

import pytest

from workbench.cli import main
from workbench.errors import DatasetError

from .helpers import load, write_cifar, write_mnist


def origin(batches) -> str:
    return batches.description.split(" from ", 1)[1]


@pytest.mark.parametrize("name, extra, files", [
    ("fashion-mnist", [], "Fashion-MNIST train files (train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte"),
    ("mnist", ["dataset.download=false"], "MNIST train files (train-images-idx3-ubyte[.gz]"),
    ("cifar10", ["dataset.download=false", "dataset.split=test"], "CIFAR-10 test files (cifar-10-batches-py/"),
])
def test_a_root_that_does_not_exist_is_an_error_even_when_a_copy_exists_elsewhere(places, tmp_path, name, extra,
                                                                                  files):
    write_mnist(places.system / "fashion-mnist")  # as Debian installs it
    write_mnist(places.system / "mnist")
    write_cifar(places.system)
    missing = tmp_path / "nonexistent"
    with pytest.raises(DatasetError) as info:
        load(f"dataset.name={name}", f"dataset.root={missing}", *extra)
    message = str(info.value)
    assert message.startswith(f"dataset.root = {str(missing)!r} does not exist; set it to a folder holding the {files}")
    assert "set dataset.download = true to download into it" in message
    assert "leave it empty" in message and "\n" not in message
    assert places.download.calls == []


def test_a_root_that_is_a_file_is_an_error(places, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DatasetError, match=r"dataset.root = '.*afile' is a file, not a folder; set it to the folder"):
        load("dataset.name=mnist", f"dataset.root={tmp_path / 'afile'}")


def test_the_default_root_still_falls_back(places):
    write_mnist(places.system / "fashion-mnist")
    assert origin(load("dataset.name=fashion-mnist")) == str(places.system / "fashion-mnist")
    assert origin(load("dataset.name=fashion-mnist", "dataset.root=")) == str(places.system / "fashion-mnist")
    for f in (places.system / "fashion-mnist").iterdir():
        f.unlink()
    assert load("dataset.name=fashion-mnist").description.startswith("embedded Fashion-MNIST sample")


def test_an_existing_root_without_the_files_searches_on_as_documented(places, tmp_path):
    write_mnist(places.system / "mnist")
    (tmp_path / "empty").mkdir()
    assert origin(load("dataset.name=mnist", f"dataset.root={tmp_path / 'empty'}")) == str(places.system / "mnist")


def test_with_download_a_new_root_is_where_the_download_goes_and_nothing_else_is_used(places, tmp_path):
    write_mnist(places.system / "mnist")  # not silently used instead of the root that was asked for
    root = tmp_path / "new-root"
    places.download.writer = lambda name, target: write_mnist(target / name / "raw", seed=9)
    batches = load("dataset.name=mnist", f"dataset.root={root}")
    assert places.download.calls == [("MNIST", root, (True,))]
    assert origin(batches) == str(root / "MNIST" / "raw")


def test_train_stops_with_one_line_naming_the_root(places, in_tmp_cwd, capsys):
    write_mnist(places.system / "fashion-mnist")
    quick = ["train.steps=1", "train.batch_size=4", "sample.n=1", "sample.steps=1"]  # should it train after all
    sets = [a for s in ["dataset.root=/nonexistent/fashion", *quick] for a in ("--set", s)]
    code = main(["train", "--plain", *sets])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("error: dataset.root = '/nonexistent/fashion' does not exist")
    assert not (in_tmp_cwd / "runs").exists() or not any((in_tmp_cwd / "runs").iterdir())
