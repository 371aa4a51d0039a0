"""The small garment classifier whose features score 28x28 / 32x32 grayscale samples offline.

Three 3x3 convolutions (32, 64, 128 channels, each with batch norm, ReLU and 2x2 max-pooling), a global
average, then a 128-d linear layer: its output (before the ReLU that feeds the 10-class head) is the
feature. Pre-activation features have no dead (always-zero) dimensions, so their covariance is full rank.
Images are padded to 32x32 with black, as training pads Fashion-MNIST and MNIST, and scaled to [-1, 1].

The weights ship inside the package (`workbench_plugins/fashion_mnist_classifier_v1.safetensors`, float32) and
are made by `tools/train_feature_classifier.py` from the real Fashion-MNIST training split (two epochs):
110,698 parameters, 436 KiB, 90.6% accuracy on the 10,000 test images (recorded in the file's metadata). The numbers it gives are Frechet distances *in this network's feature
space*: comparable with each other at the same n and reference split, never with a published FID.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

FEATURE_DIM = 128
INPUT_SIZE = 32
WEIGHTS_NAME = "fashion_mnist_classifier_v1.safetensors"
VERSION = "1"


class GarmentClassifier(nn.Module):
    """uint8-derived input (N, 1, 32, 32) in [-1, 1] -> class logits (N, 10); `features` gives (N, 128)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()

        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                    nn.MaxPool2d(2)]

        self.body = nn.Sequential(*stage(1, 32), *stage(32, 64), *stage(64, 128),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embed = nn.Linear(128, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.features(x)))


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, H, W), H and W at most 32 -> float (N, 1, 32, 32) in [-1, 1], padded with black."""
    from workbench.data.preprocess import pad_images

    return pad_images(images, INPUT_SIZE).float() / 127.5 - 1.0


class ClassifierFeatures:
    """The garment classifier's 128-d features, for grayscale images of at most 32x32."""

    name = "fashion-classifier"
    version = VERSION
    dim = FEATURE_DIM
    frechet_label = "FD_fashion-classifier"
    kernel_label = "KD_fashion-classifier"

    def __init__(self, weights: Path):
        from workbench.evaluation.inception import WeightsError

        try:
            from safetensors.torch import load_file

            state = load_file(str(weights))
        except Exception as exc:  # noqa: BLE001 - a missing or damaged file in the installed package
            raise WeightsError(f"the classifier weights {str(weights)!r} cannot be read ({type(exc).__name__}); "
                               "reinstall ddpm-workbench or rebuild them with tools/train_feature_classifier.py") from None
        self.network = GarmentClassifier()
        self.network.load_state_dict(state, strict=False)  # batch norm's num_batches_tracked is not shipped
        self.network.eval()
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as f:
            self.metadata = dict(f.metadata() or {})

    def refuse(self, channels: int, size: int) -> str | None:
        if channels != 1 or size > INPUT_SIZE:
            return (f"it takes grayscale images of at most {INPUT_SIZE}x{INPUT_SIZE} (Fashion-MNIST, MNIST); "
                    "use --extractor inception")
        return None

    def to(self, device) -> "ClassifierFeatures":
        self.network.to(device)
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.features(to_input(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """The Fashion-MNIST class (0..9) the classifier assigns to each uint8 image (N, 1, H, W), on the CPU."""
        device = next(self.network.parameters()).device
        return torch.cat([self.network(to_input(chunk.to(device))).argmax(dim=1).cpu()
                          for chunk in images.split(batch_size)])


def class_adherence(images: torch.Tensor, labels: torch.Tensor, classifier: ClassifierFeatures) -> float:
    """The fraction of class-conditional samples the garment classifier assigns to the class they were asked
    for (Fashion-MNIST label indices). Real test images score the classifier's accuracy (90.6%); random
    labels about 10%."""
    return float((classifier.predict(images) == labels.cpu()).double().mean())
