"""The shipped garment classifier: small, trained, and a distance that grows as images are degraded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.evaluation.classifier import to_input
from workbench.evaluation.extractors import build_extractor, extract_features
from workbench.evaluation.metrics import frechet_distance_of, gaussian_stats
from workbench_plugins.extractors import CLASSIFIER_WEIGHTS


@pytest.fixture(scope="module")
def garments():
    """1,000 Fashion-MNIST training images (from the sample embedded in the package), padded to 32 px."""
    from workbench.data.preprocess import pad_images
    from workbench_plugins.datasets.embedded import SAMPLE_PATH

    with np.load(SAMPLE_PATH) as data:
        images = torch.from_numpy(data["images"][::10].copy())[:, None]
        labels = torch.from_numpy(data["labels"][::10].astype(np.int64))
    return pad_images(images, 32), labels


@pytest.fixture(scope="module")
def extractor():
    return build_extractor("fashion-classifier")


def test_the_shipped_weights_are_small_and_record_their_test_accuracy(extractor):
    assert CLASSIFIER_WEIGHTS.stat().st_size < 1_000_000
    assert float(extractor.metadata["test_accuracy"]) >= 0.9
    assert extractor.metadata["version"] == extractor.version


def test_it_is_a_trained_classifier(extractor, garments):
    images, labels = garments
    with torch.inference_mode():
        predicted = extractor.network(to_input(images)).argmax(1)
    assert (predicted == labels).float().mean() > 0.85


def test_its_results_are_never_called_fid(extractor):
    assert extractor.frechet_label == "FD_fashion-classifier" and "FID" not in extractor.kernel_label


def test_it_takes_28_and_32_px_grayscale_and_refuses_the_rest(extractor):
    assert not extractor.refuse(1, 28) and not extractor.refuse(1, 32)
    assert "use --extractor inception" in extractor.refuse(3, 32)
    assert extractor.refuse(1, 64)
    unpadded = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    padded = torch.zeros(3, 1, 32, 32, dtype=torch.uint8)
    torch.testing.assert_close(extractor(unpadded), extractor(padded))  # 28 px is padded as training pads


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    return gaussian_blur(images, kernel_size=7, sigma=sigma)


def shift(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Moved right by `pixels`, black coming in from the left (nothing wraps around)."""
    return torch.nn.functional.pad(images, (pixels, 0))[..., :images.shape[-1]]


@pytest.mark.parametrize("degrade, amounts", [(shift, (1, 2, 3, 5)), (blur, (0.5, 1.0, 1.5, 2.5))])
def test_distance_to_itself_is_zero_and_grows_monotonically_with_degradation(extractor, garments, degrade, amounts):
    images, _ = garments
    reference = gaussian_stats(extract_features(extractor, images))
    assert abs(frechet_distance_of(reference, reference)) < 1e-6
    distances = [frechet_distance_of(gaussian_stats(extract_features(extractor, degrade(images, a))), reference)
                 for a in amounts]
    assert distances == sorted(distances), distances
    assert distances[0] > 0.01


def test_class_adherence_is_the_share_classified_as_asked(extractor, garments):
    from workbench.evaluation.classifier import class_adherence

    images, labels = garments
    assert class_adherence(images, labels, extractor) > 0.85  # real garments with their true labels
    wrong = (labels + 1 + torch.randint(0, 9, labels.shape, generator=torch.Generator().manual_seed(0))) % 10
    assert class_adherence(images, wrong, extractor) < 0.1  # every label moved to another class
    assert class_adherence(images[:4], labels[:4], extractor) in (0.0, 0.25, 0.5, 0.75, 1.0)
