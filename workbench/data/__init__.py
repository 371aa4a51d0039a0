"""Image data for training: what dataset plugins return (`ImageSource`), and `build_dataset`, which turns
a config's [dataset] section into `ImageBatches` on the training device."""

from workbench.data.batches import EpochOrder, ImageBatches, InMemoryBatches, StreamingBatches
from workbench.data.build import build_dataset
from workbench.data.locations import DATA_ENV, cache_dir, search_places
from workbench.data.preprocess import pad_images, to_unit_range
from workbench.data.source import ImageSource, InMemoryImages, StreamingImages

__all__ = [
    "DATA_ENV",
    "EpochOrder",
    "ImageBatches",
    "ImageSource",
    "InMemoryBatches",
    "InMemoryImages",
    "StreamingBatches",
    "StreamingImages",
    "build_dataset",
    "cache_dir",
    "pad_images",
    "search_places",
    "to_unit_range",
]
