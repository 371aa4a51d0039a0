"""The numbers of sample quality, computed from two sets of features (generated and reference).

- Frechet distance (Heusel et al. 2017, the formula of FID): ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^1/2)
  between Gaussians fitted to the two sets, in float64 with scipy's matrix square root exactly as pytorch-fid
  computes it (including its fallback of adding eps to the diagonals when the product is singular).
- Kernel Inception Distance (Binkowski et al. 2018): the unbiased estimator of MMD^2 with the cubic polynomial
  kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets as torch-fidelity and clean-fid do
  (100 subsets of 1,000 or of n when fewer); its standard deviation over the subsets is reported with it.
- Precision and recall (Kynkaanniemi et al. 2019): the share of generated samples inside the union of the
  reference samples' k-nearest-neighbour balls (k = 3), and the other way round.

All take numpy arrays (N, D); none knows which network made the features.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
PR_NEIGHBOURS = 3


@dataclass(frozen=True)
class GaussianStats:
    """Mean (D,) and covariance (D, D), float64, of `n` feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])


def gaussian_stats(features: np.ndarray) -> GaussianStats:
    """Mean and unbiased covariance (np.cov, as pytorch-fid) of features (N, D), in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {features.shape}")
    return GaussianStats(features.mean(axis=0), np.cov(features, rowvar=False), int(features.shape[0]))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """The Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), as pytorch-fid's
    `calculate_frechet_distance`: scipy.linalg.sqrtm of the product; when that is not finite (a singular
    product) eps is added to both diagonals, with a RuntimeWarning; a small imaginary part from rounding is
    dropped, a large one raises ValueError."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"statistics of different dimensions: mean {mu1.shape} vs {mu2.shape}, "
                         f"covariance {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"the covariance product is singular; added {eps} to the diagonals (as pytorch-fid does)",
                      RuntimeWarning, stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"matrix square root has an imaginary component of {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance_of(a: GaussianStats, b: GaussianStats) -> float:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def polynomial_mmd2_unbiased(x, y) -> float:
    """The unbiased MMD^2 estimate between samples x (m, D) and y (m, D) with k(a, b) = (a.b / D + 1)^3:
    the mean of k over distinct pairs within x and within y, minus twice the mean of k over all x-y pairs.
    x and y are numpy arrays or torch tensors (on any device)."""
    m, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * kxy.sum() / (m * m))


def kernel_distance(generated: np.ndarray, reference: np.ndarray, *, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE, seed: int = 0, device="cpu") -> tuple[float, float]:
    """KID: (mean, std) of the unbiased polynomial-kernel MMD^2 over `subsets` random subsets of
    min(subset_size, len of either set) drawn without replacement from each set (torch-fidelity's scheme),
    computed in float64 on `device` (a GPU makes the 100 subsets of 2048-d Inception features cheap)."""
    import torch

    if generated.shape[1] != reference.shape[1]:
        raise ValueError(f"features of different dimensions: {generated.shape[1]} vs {reference.shape[1]}")
    m = min(len(generated), len(reference), subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    if torch.device(device).type == "cpu":  # numpy's float64 matmul is several times faster than torch's here
        gen, ref = np.asarray(generated, np.float64), np.asarray(reference, np.float64)
    else:
        gen = torch.as_tensor(np.asarray(generated), dtype=torch.float64, device=device)
        ref = torch.as_tensor(np.asarray(reference), dtype=torch.float64, device=device)
    rng = np.random.RandomState(seed)
    mmds = np.array([float(polynomial_mmd2_unbiased(gen[rng.choice(len(gen), m, replace=False)],
                                                    ref[rng.choice(len(ref), m, replace=False)]))
                     for _ in range(subsets)])
    return float(mmds.mean()), float(mmds.std())


def _kth_neighbour_radii(features, k: int, chunk: int):
    """Distance of each row to its k-th nearest other row (the row itself, at 0, is not counted)."""
    import torch

    radii = []
    for start in range(0, len(features), chunk):
        d = torch.cdist(features[start:start + chunk], features)
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def _inside_any_ball(points, centres, radii, chunk: int):
    import torch

    inside = []
    for start in range(0, len(points), chunk):
        d = torch.cdist(points[start:start + chunk], centres)
        inside.append((d <= radii[None, :]).any(dim=1))
    return torch.cat(inside)


def precision_recall(generated: np.ndarray, reference: np.ndarray, *, k: int = PR_NEIGHBOURS,
                     chunk: int = 1000, device="cpu") -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-nearest-neighbour balls, on `device`
    (pairwise distances: n^2 D work, minutes for 10,000 Inception features on a CPU, seconds on a GPU)."""
    import torch

    gen = torch.as_tensor(np.asarray(generated), dtype=torch.float64, device=device)
    ref = torch.as_tensor(np.asarray(reference), dtype=torch.float64, device=device)
    if min(len(gen), len(ref)) <= k:
        raise ValueError(f"precision/recall with k = {k} needs more than {k} samples in each set")
    precision = _inside_any_ball(gen, ref, _kth_neighbour_radii(ref, k, chunk), chunk).double().mean()
    recall = _inside_any_ball(ref, gen, _kth_neighbour_radii(gen, k, chunk), chunk).double().mean()
    return float(precision), float(recall)
