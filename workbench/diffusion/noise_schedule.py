"""The public view of a noise schedule that samplers read: float64 CPU tables, never the diffusion's internals.

With alpha-bar_t = prod_{s <= t} (1 - beta_s) and t in 0..T-1 (t = 0 is the paper's t = 1), a sample at
timestep t is x_t = sqrt(alpha-bar_t) x0 + sqrt(1 - alpha-bar_t) eps (Ho et al. 2020). Samplers that work in
the variance-exploding picture of Karras et al. 2022 use sigma_t = sqrt((1 - alpha-bar_t) / alpha-bar_t),
for which x_t / sqrt(alpha-bar_t) = x0 + sigma_t eps. Where alpha-bar is exactly 0 (zero terminal SNR),
`sigmas` uses alpha-bar = 2**-24 instead, as diffusers does, so every sigma is finite.

Fractional timesteps (for sigmas between table entries) follow diffusers' `_sigma_to_t`: log-sigma is
interpolated linearly in t, so `sigma_at` and `timestep_of` invert each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

ZERO_ALPHA_BAR_STANDIN = 2.0**-24  # diffusers' substitute for alpha-bar = 0 (zero terminal SNR)


@dataclass(frozen=True)
class Posterior:
    """Ho et al. 2020 eq. 6-7 for a chain of betas: q(x_{t-1} | x_t, x0) = N(coef1 x0 + coef2 x_t, variance),
    in float64. `log_variance_clipped[0]` is log(variance[1]), as improved-diffusion (variance[0] is 0)."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    variance: torch.Tensor
    log_variance_clipped: torch.Tensor
    mean_coef1: torch.Tensor
    mean_coef2: torch.Tensor


def posterior_coefficients(betas: torch.Tensor) -> Posterior:
    """The posterior of the chain with these betas (float64, alpha-bar_{-1} = 1), improved-diffusion's tables."""
    betas = torch.as_tensor(betas, dtype=torch.float64)
    alphas = 1.0 - betas
    ab = torch.cumprod(alphas, dim=0)
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    one_minus_ab = 1.0 - ab
    variance = betas * (1.0 - ab_prev) / one_minus_ab
    return Posterior(
        betas=betas,
        alphas_cumprod=ab,
        alphas_cumprod_prev=ab_prev,
        variance=variance,
        # variance[0] is 0; its log is clipped to the next value, as improved-diffusion does.
        log_variance_clipped=torch.log(torch.cat([variance[1:2], variance[1:]])),
        mean_coef1=betas * ab_prev.sqrt() / one_minus_ab,
        mean_coef2=(1.0 - ab_prev) * alphas.sqrt() / one_minus_ab,
    )


@dataclass(frozen=True)
class NoiseSchedule:
    """What a sampler may know about the schedule: float64 tensors (T,) on the CPU, and the network's
    parametrization (`prediction`: eps, x0 or v). Build with `NoiseSchedule.from_betas`."""

    num_timesteps: int
    prediction: str
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    sigmas: torch.Tensor

    @classmethod
    def from_betas(cls, betas: torch.Tensor, prediction: str = "eps") -> "NoiseSchedule":
        betas = torch.as_tensor(betas).detach().to("cpu", torch.float64)
        ab = torch.cumprod(1.0 - betas, dim=0)
        finite_ab = ab.clamp_min(ZERO_ALPHA_BAR_STANDIN) if bool((ab == 0).any()) else ab
        return cls(num_timesteps=int(betas.shape[0]), prediction=prediction, betas=betas, alphas_cumprod=ab,
                   sqrt_alphas_cumprod=ab.sqrt(), sqrt_one_minus_alphas_cumprod=(1.0 - ab).sqrt(),
                   sigmas=((1.0 - finite_ab) / finite_ab).sqrt())

    def posterior(self, timesteps: Sequence[int] | None = None) -> Posterior:
        """The posterior of the chain that visits `timesteps` (ascending; all of 0..T-1 when None): its betas are
        1 - alpha-bar_t / alpha-bar_prev-kept, improved-diffusion's respacing (Nichol & Dhariwal 2021)."""
        if timesteps is None:
            return posterior_coefficients(self.betas)
        ab = self.alphas_cumprod[torch.as_tensor(list(timesteps), dtype=torch.long)]
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        return posterior_coefficients(1.0 - ab / ab_prev)

    def sigma_at(self, t: np.ndarray | Sequence[float]) -> np.ndarray:
        """sigma at (fractional) timesteps t in [0, T-1]: log-sigma interpolated linearly in t (float64)."""
        t = np.asarray(t, dtype=np.float64)
        return np.exp(np.interp(t, np.arange(self.num_timesteps), np.log(self.sigmas.numpy())))

    def timestep_of(self, sigma: np.ndarray | Sequence[float]) -> np.ndarray:
        """The fractional timestep of each sigma (diffusers' `_sigma_to_t`), clamped to [0, T-1] (float64)."""
        log_sigmas = np.log(self.sigmas.numpy())
        log_sigma = np.log(np.maximum(np.asarray(sigma, dtype=np.float64), 1e-10))
        low = np.clip(np.searchsorted(log_sigmas, log_sigma, side="right") - 1, 0, self.num_timesteps - 2)
        w = np.clip((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[low + 1]), 0.0, 1.0)
        return (1.0 - w) * low + w * (low + 1)
