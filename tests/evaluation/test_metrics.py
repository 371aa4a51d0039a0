"""Frechet distance, KID and precision/recall against direct computations."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import linalg

from workbench.evaluation.metrics import (frechet_distance, frechet_distance_of, gaussian_stats,
                                          kernel_distance, polynomial_mmd2_unbiased, precision_recall)


def random_features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing * scale + shift


def reference_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula in float64, with Tr (S1 S2)^1/2 = Tr (S1^1/2 S2 S1^1/2)^1/2 (a symmetric PSD
    product, so its root is real): an independent route to the same number."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root1 = linalg.sqrtm(s1).real
    inner = root1 @ s2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def test_frechet_distance_matches_a_float64_reference_on_random_features():
    a = random_features(500, 16, seed=1)
    b = random_features(400, 16, seed=2, shift=0.3, scale=1.5)
    got = frechet_distance_of(gaussian_stats(a), gaussian_stats(b))
    assert got == pytest.approx(reference_frechet(a, b), rel=1e-8)
    assert got > 0.1


def test_frechet_distance_matches_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = random_features(300, 8, seed=3), random_features(300, 8, seed=4, shift=1.0)
    sa, sb = gaussian_stats(a), gaussian_stats(b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pytorch-fid passes scipy's deprecated disp=
        expected = calculate_frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma)
    assert frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_a_set_to_itself_is_zero_and_grows_with_the_shift():
    a = random_features(600, 12, seed=5)
    stats = gaussian_stats(a)
    assert abs(frechet_distance_of(stats, stats)) < 1e-6
    distances = [frechet_distance_of(stats, gaussian_stats(a + shift)) for shift in (0.1, 0.2, 0.4, 0.8)]
    assert distances == sorted(distances) and distances[0] > 0
    # a pure shift moves only the means: the distance is |shift|^2 * D
    assert distances[-1] == pytest.approx(0.8 ** 2 * 12, rel=1e-6)


def test_a_singular_product_falls_back_to_eps_on_the_diagonal_with_a_warning():
    a = random_features(5, 10, seed=6)  # fewer samples than dimensions: rank-deficient covariance
    b = random_features(5, 10, seed=7)
    sa, sb = gaussian_stats(a), gaussian_stats(b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = frechet_distance_of(sa, sb)
    assert np.isfinite(value)
    if caught:  # LAPACK may or may not find the product singular; when it does, it says so
        assert "singular" in str(caught[0].message)


def test_statistics_of_different_dimensions_are_refused():
    with pytest.raises(ValueError, match="different dimensions"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def direct_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """MMD^2_u by its definition, one pair at a time."""
    m, d = x.shape
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_unbiased_estimator_matches_a_direct_computation():
    x, y = random_features(12, 5, seed=8), random_features(12, 5, seed=9, shift=0.5)
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(direct_mmd2_unbiased(x, y), rel=1e-10)


def test_kid_averages_subsets_and_reports_their_spread():
    x, y = random_features(40, 5, seed=10), random_features(30, 5, seed=11, shift=0.5)
    mean, std = kernel_distance(x, y, subsets=7, subset_size=20, seed=3)
    rng = np.random.RandomState(3)
    expected = [direct_mmd2_unbiased(x[rng.choice(40, 20, replace=False)], y[rng.choice(30, 20, replace=False)])
                for _ in range(7)]
    assert mean == pytest.approx(np.mean(expected), rel=1e-9)
    assert std == pytest.approx(np.std(expected), rel=1e-9)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    pool = random_features(1600, 8, seed=13)
    near, _ = kernel_distance(pool[:800], pool[800:], subsets=20, subset_size=400)
    far, _ = kernel_distance(pool[:800], pool[800:] + 1.0, subsets=20, subset_size=400)
    assert abs(near) < 0.01 < far


def test_precision_and_recall_are_one_for_the_same_set_and_zero_for_far_apart_sets():
    a = random_features(200, 4, seed=14)
    assert precision_recall(a, a) == (1.0, 1.0)
    assert precision_recall(a + 100.0, a) == (0.0, 0.0)


def test_precision_recall_tell_mode_collapse_from_spread():
    reference = random_features(400, 2, seed=15)
    collapsed = reference[:400] * 0.1  # every sample near the centre: plausible but not diverse
    precision, recall = precision_recall(collapsed, reference)
    assert precision > 0.9 and recall < 0.5


def test_the_kid_kernel_gives_the_same_number_on_torch_tensors():
    """The GPU path of KID runs the same estimator on torch tensors."""
    import torch

    x, y = random_features(30, 6, seed=16), random_features(30, 6, seed=17, shift=0.2)
    assert polynomial_mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(
        polynomial_mmd2_unbiased(x, y), rel=1e-12)
