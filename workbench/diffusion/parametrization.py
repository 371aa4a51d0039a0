"""What the network predicts (eps, x0 or v) and the conversions among them, on per-sample coefficients.

With a = sqrt(alpha-bar_t), b = sqrt(1 - alpha-bar_t) and x_t = a x0 + b eps (Ho et al. 2020), the
v-parametrization is v = a eps - b x0 (Salimans & Ho 2022), so x0 = a x_t - b v and eps = b x_t + a v.
`a` and `b` broadcast against the images (shape (B, 1, 1, 1) or a scalar tensor).

alpha-bar may be exactly 0 at the last index (zero terminal SNR, `jsd`). There x_t is pure noise and an
eps-prediction carries no information about x0; dividing by `a` would give inf/NaN, so `x0_from_eps`
replaces an `a` of exactly 0 with 2**-12 (alpha-bar 2**-24, the value diffusers substitutes for the same
reason). Every other `a` is used as it is, however small (cosine's last alpha-bar is 2.4e-9): flooring those
would bias x0, and the samples, toward 0. Use v or x0 prediction with zero-terminal-SNR schedules (Lin et
al. 2023). `b` is never 0 because every beta_0 > 0.
"""

from __future__ import annotations

import torch

PREDICTIONS = ("eps", "x0", "v")
WEIGHTINGS = ("uniform", "min-snr")
ZERO_SQRT_ALPHA_BAR_STANDIN = 2.0**-12  # sqrt(2**-24)


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction {prediction!r} is not one of {', '.join(PREDICTIONS)}")
    return prediction


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Ho et al. 2020 eq. 15 solved for x0: x0 = (x_t - b eps) / a; an `a` of exactly 0 becomes 2**-12
    (see module doc)."""
    return (x_t - b * eps) / a.masked_fill(a == 0, ZERO_SQRT_ALPHA_BAR_STANDIN)


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """eps = (x_t - a x0) / b."""
    return (x_t - a * x0) / b


def v_from(x0: torch.Tensor, eps: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Salimans & Ho 2022: v = a eps - b x0."""
    return a * eps - b * x0


def x0_from_v(x_t: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Salimans & Ho 2022: x0 = a x_t - b v."""
    return a * x_t - b * v


def eps_from_v(x_t: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Salimans & Ho 2022: eps = b x_t + a v."""
    return b * x_t + a * v


def x0_from_output(prediction: str, output: torch.Tensor, x_t: torch.Tensor, a, b) -> torch.Tensor:
    """The network's output, in parametrization `prediction`, converted to a prediction of x0."""
    if prediction == "eps":
        return x0_from_eps(x_t, output, a, b)
    if prediction == "x0":
        return output
    return x0_from_v(x_t, output, a, b)


def eps_from_output(prediction: str, output: torch.Tensor, x_t: torch.Tensor, a, b) -> torch.Tensor:
    """The network's output, in parametrization `prediction`, converted to a prediction of eps."""
    if prediction == "eps":
        return output
    if prediction == "x0":
        return eps_from_x0(x_t, output, a, b)
    return eps_from_v(x_t, output, a, b)


def training_target(prediction: str, x0: torch.Tensor, eps: torch.Tensor, a, b) -> torch.Tensor:
    """What the network should output for x_t = a x0 + b eps."""
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    return v_from(x0, eps, a, b)


def min_snr_weight(prediction: str, snr: torch.Tensor, gamma: float) -> torch.Tensor:
    """Hang et al. 2023 (Min-SNR-gamma) on the loss of each parametrization: min(SNR, gamma)/SNR for eps,
    min(SNR, gamma) for x0, min(SNR, gamma)/(SNR + 1) for v. SNR = 0 gives 1, 0 and 0 (the limits)."""
    clipped = torch.clamp(snr, max=gamma)
    if prediction == "eps":
        return torch.clamp(gamma / snr, max=1.0)  # = min(SNR, gamma) / SNR, and 1 (not 0/0) at SNR = 0
    if prediction == "x0":
        return clipped
    return clipped / (snr + 1.0)
