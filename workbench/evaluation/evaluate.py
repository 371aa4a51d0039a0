"""Scoring generated images against reference statistics: the numbers and how they are printed.

Every line names the metric (labelled by the extractor: FID/KID only for Inception), the number of
samples and the extractor, because a Frechet distance is comparable only at the same n, with the same
extractor and against the same reference set.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from workbench.errors import UsageError
from workbench.evaluation.metrics import (KID_SUBSET_SIZE, KID_SUBSETS, frechet_distance_of, gaussian_stats,
                                          kernel_distance, precision_recall)
from workbench.evaluation.reference import ReferenceStats

DEFAULT_N = 10_000
DEFAULT_N_CPU = 1_000
SMALL_N_WARNING = ("FID-like distances at small n are biased upwards and comparable only at the same n "
                   "(published FIDs use 50,000 samples)")


@dataclass
class EvalResult:
    extractor: str
    frechet_label: str
    kernel_label: str
    n: int
    n_reference: int
    reference: str
    frechet: float | None = None
    kid: float | None = None
    kid_std: float | None = None
    kid_subset: int | None = None
    precision: float | None = None
    recall: float | None = None
    class_adherence: float | None = None  # class-conditional Fashion-MNIST runs: asked-for class = classified
    guidance: float | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        tail = f"n={self.n}  extractor={self.extractor}  reference={self.reference}"
        rows = []
        if self.frechet is not None:
            rows.append((self.frechet_label, f"{self.frechet:.4f}", ""))
        if self.kid is not None:
            rows.append((self.kernel_label, f"{self.kid:.6f} +- {self.kid_std:.6f}",
                         f"  ({KID_SUBSETS} subsets of {self.kid_subset})"))
        if self.precision is not None:
            rows += [("precision", f"{self.precision:.4f}", "  (k=3)"), ("recall", f"{self.recall:.4f}", "  (k=3)")]
        if self.class_adherence is not None:
            rows.append(("class adherence", f"{self.class_adherence:.4f}",
                         f"  (fashion-classifier's class = the asked-for class; guidance {self.guidance:g})"))
        label_width = max((len(r[0]) for r in rows), default=0)
        value_width = max((len(r[1]) for r in rows), default=0)
        return [f"{label:<{label_width}}  {value:<{value_width}}  {tail}{extra}" for label, value, extra in rows]

    def as_dict(self) -> dict:
        return asdict(self)


def check_shapes(channels: int, size: int, reference: ReferenceStats, what: str = "samples") -> None:
    if reference.channels is not None and (reference.channels, reference.image_size) != (channels, size):
        raise UsageError(f"the reference {reference.description} has {reference.channels}x{reference.image_size}x"
                         f"{reference.image_size} images; the {what} are {channels}x{size}x{size}: score against a "
                         "reference of the same image size and channel count")


def check_sample_count(n: int, extractor) -> None:
    if n <= extractor.dim:
        raise UsageError(f"{n} samples are not more than the {extractor.dim} feature dimensions of {extractor.name!r}: "
                         f"the covariance of the Frechet distance would be singular; use more than {extractor.dim} "
                         "samples (10,000 is usual)")


def score_features(features: np.ndarray, reference: ReferenceStats, extractor, *, kid: bool = True,
                   precision_recall_too: bool = True, device="cpu") -> EvalResult:
    """The metrics of generated features against `reference` (KID and precision/recall computed on `device`)."""
    check_sample_count(len(features), extractor)
    result = EvalResult(extractor.name, extractor.frechet_label, extractor.kernel_label, len(features),
                        reference.stats.n, reference.description)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result.frechet = frechet_distance_of(gaussian_stats(features), reference.stats)
    result.notes += [str(w.message) for w in caught]
    if reference.features is None:
        if kid or precision_recall_too:
            result.notes.append("the reference holds only mu and sigma: KID and precision/recall need its features")
        return result
    if kid:
        result.kid, result.kid_std = kernel_distance(features, reference.features, device=device)
        result.kid_subset = min(len(features), len(reference.features), KID_SUBSET_SIZE)
    if precision_recall_too:
        size = min(len(features), len(reference.features))
        result.precision, result.recall = precision_recall(features[:size], reference.features[:size], device=device)
    return result
