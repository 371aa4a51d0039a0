"""Built-in datasets: mnist, fashion-mnist, cifar10, image-folder, npy and synthetic.

Each factory returns a `workbench.data.ImageSource`; docs/datasets.md describes where each dataset is looked
for and what it accepts. The host keys of [dataset] (name, pad_to, flip, limit) are applied by
`workbench.data.build_dataset`; the keys registered here are each dataset's own.
"""

from __future__ import annotations

from workbench.data import InMemoryImages
from workbench.plugin_host import hookimpl
from workbench_plugins.datasets import arrays, image_folder, standard, synthetic
from workbench_plugins.datasets.embedded import load_sample


def mnist(root: str = "", split: str = "train", download: bool = True) -> InMemoryImages:
    return standard.load_idx_dataset(standard.MNIST, root, split, download)


def fashion_mnist(root: str = "", split: str = "train", download: bool = False,
                  sample_fallback: bool = True) -> InMemoryImages:
    """The full Fashion-MNIST when it is found without the network (or downloaded, when download = true);
    otherwise, for the train split, the embedded 10,000-image sample. split = "sample" always uses it."""
    names = standard.FASHION_MNIST.class_names
    if split == "sample":
        return load_sample(names)
    fallback = None
    if split == "train" and sample_fallback:
        def fallback() -> InMemoryImages:
            return load_sample(names, note="the full dataset was not found; see docs/datasets.md")
    return standard.load_idx_dataset(standard.FASHION_MNIST, root, split, download, fallback)


def cifar10(root: str = "", split: str = "train", download: bool = True) -> InMemoryImages:
    return standard.load_cifar10(root, split, download)


def check_fashion_split(params: dict) -> None:
    standard.check_split(params, standard.SPLITS + ("sample",))


@hookimpl
def register_datasets(register):
    register("mnist", mnist, params={"root": "", "split": "train", "download": True},
             validate=standard.check_split,
             description="MNIST handwritten digits, 28x28 grayscale, 10 classes (no flips)",
             reference="LeCun et al. 1998")
    register("fashion-mnist", fashion_mnist,
             params={"root": "", "split": "train", "download": False, "sample_fallback": True},
             validate=check_fashion_split,
             description="Fashion-MNIST garments, 28x28 grayscale, 10 classes; the embedded 10,000-image "
                         "sample when the full set is not found offline (no flips)",
             reference="Xiao, Rasul & Vollgraf 2017 (MIT, Zalando SE)")
    register("cifar10", cifar10, params={"root": "", "split": "train", "download": True},
             validate=standard.check_split,
             description="CIFAR-10, 32x32 RGB, 10 classes (flips on)", reference="Krizhevsky 2009")
    register("image-folder", image_folder.load_image_folder,
             params={"path": "", "size": 0, "grayscale": False, "max_memory_mb": 2048, "workers": -1},
             validate=image_folder.check_params,
             description="a folder tree of PNG/JPEG/WebP images, resized and center-cropped to `size`; "
                         "sub-folders are classes (flips on)")
    register("npy", arrays.load_array,
             params={"path": "", "key": "", "labels_key": "", "layout": "auto", "size": 0},
             validate=arrays.check_params,
             description="a .npy/.npz array of images: uint8 or float in [0,1]/[-1,1], (N,H,W), (N,H,W,C) "
                         "or (N,C,H,W) (no flips)")
    register("synthetic", synthetic.load_synthetic, params={"count": 512, "size": 32, "channels": 1, "seed": 0},
             validate=synthetic.check_params,
             description="procedurally drawn shapes for smoke tests; deterministic, no files (flips on)")
