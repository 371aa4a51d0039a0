"""Built-in feature extractors for evaluation (`ddpm-workbench eval`, `train.eval_every`).

- `inception`: Inception-v3 pool3, the network of published FIDs, through pytorch-fid (weights downloaded
  on first use, or `--inception PATH` / $DDPM_WORKBENCH_INCEPTION offline).
- `fashion-classifier`: a small CNN (110,698 parameters; 436 KiB of float32 safetensors shipped in
  this package) trained for two epochs on the 60,000 Fashion-MNIST training images by
  tools/train_feature_classifier.py: 90.6% accuracy on the 10,000 test images. Its numbers are labelled
  FD_/KD_fashion-classifier, never FID.
"""

from __future__ import annotations

from pathlib import Path

from workbench.plugin_host import hookimpl

CLASSIFIER_WEIGHTS = Path(__file__).with_name("fashion_mnist_classifier_v1.safetensors")


def inception(weights: str = ""):
    from workbench.evaluation.inception import InceptionFeatures

    return InceptionFeatures(weights)


def fashion_classifier():
    from workbench.evaluation.classifier import ClassifierFeatures

    return ClassifierFeatures(CLASSIFIER_WEIGHTS)


@hookimpl
def register_feature_extractors(register):
    register("inception", inception, params={"weights": ""},
             description="Inception-v3 pool3 (2048-d), the TF-ported FID weights via pytorch-fid: published FIDs",
             reference="Heusel et al. 2017; Szegedy et al. 2016")
    register("fashion-classifier", fashion_classifier,
             description="a small CNN trained on Fashion-MNIST (128-d features) for 28/32 px grayscale; offline, "
                         "fast on a CPU; not FID",
             reference="Xiao et al. 2017 (data)")
