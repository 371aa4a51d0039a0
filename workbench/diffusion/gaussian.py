"""The Gaussian diffusion process of Ho et al. 2020: forward process, posterior, parametrizations, loss.

Timestep convention: an integer t in 0..T-1 indexes every table; t = 0 is the paper's t = 1, and
alpha-bar_{-1} = 1 (so alpha-bar_prev[0] = 1). Tables are computed once in float64 (kept on the CPU in
`.float64`) and cast once to float32 (moved by `.to(device)`), as improved-diffusion's GaussianDiffusion.
Samplers read the public `.schedule` (a NoiseSchedule), never these tables.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from workbench.diffusion import parametrization as param
from workbench.diffusion.noise import randn
from workbench.diffusion.noise_schedule import NoiseSchedule, posterior_coefficients


class GaussianDiffusion:
    """Tables and formulas of one schedule, for a network that predicts `prediction` (eps, x0 or v)."""

    TABLES = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
              "sqrt_one_minus_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
              "posterior_mean_coef1", "posterior_mean_coef2", "snr_table")

    def __init__(self, betas: torch.Tensor, prediction: str = "eps"):
        from workbench.diffusion.schedule import check_betas

        self.prediction = param.check_prediction(prediction)
        betas = torch.as_tensor(betas)
        if betas.dim() != 1 or betas.shape[0] < 2:
            raise ValueError(f"betas must be 1-D with at least 2 timesteps, got shape {tuple(betas.shape)}")
        checked, problem = check_betas(betas, betas.shape[0])
        if checked is None:
            raise ValueError(f"invalid betas: {problem}")
        self.num_timesteps = int(checked.shape[0])
        self.float64 = self._tables(checked)
        self.schedule = NoiseSchedule.from_betas(checked, self.prediction)  # what samplers read
        self.device = torch.device("cpu")
        for name, table in self.float64.items():
            setattr(self, name, table.to(torch.float32))

    @staticmethod
    def _tables(betas: torch.Tensor) -> dict[str, torch.Tensor]:
        """improved-diffusion's GaussianDiffusion tables, in float64."""
        posterior = posterior_coefficients(betas)
        ab = posterior.alphas_cumprod
        return {
            "betas": posterior.betas,
            "alphas_cumprod": ab,
            "alphas_cumprod_prev": posterior.alphas_cumprod_prev,
            "sqrt_alphas_cumprod": ab.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1.0 - ab).sqrt(),
            "posterior_variance": posterior.variance,
            "posterior_log_variance_clipped": posterior.log_variance_clipped,
            "posterior_mean_coef1": posterior.mean_coef1,
            "posterior_mean_coef2": posterior.mean_coef2,
            "snr_table": ab / (1.0 - ab),
        }

    @classmethod
    def from_config(cls, cfg) -> "GaussianDiffusion":
        """Schedule from a resolved cfg.schedule, prediction from cfg.train.prediction."""
        from workbench.diffusion.schedule import build_schedule

        return cls(build_schedule(cfg.schedule), prediction=cfg.train.prediction)

    def to(self, device) -> "GaussianDiffusion":
        """Move the float32 tables to `device` (the float64 ones stay on the CPU); returns self."""
        self.device = torch.device(device)
        for name in self.TABLES:
            setattr(self, name, getattr(self, name).to(self.device))
        return self

    def __repr__(self) -> str:
        return f"GaussianDiffusion(T={self.num_timesteps}, prediction={self.prediction!r}, device={self.device})"

    # -- indexing ------------------------------------------------------------------------------------

    @staticmethod
    def _at(table: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """table[t] shaped (B, 1, ..., 1) to broadcast against a (B, ...) tensor of `ndim` dimensions."""
        values = table.to(t.device)[t]
        return values.reshape(values.shape + (1,) * (ndim - values.dim()))

    def _ab(self, t: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(alpha-bar_t), sqrt(1 - alpha-bar_t)) broadcastable to `ndim` dimensions."""
        return self._at(self.sqrt_alphas_cumprod, t, ndim), self._at(self.sqrt_one_minus_alphas_cumprod, t, ndim)

    # -- forward process and posterior ---------------------------------------------------------------

    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ho et al. 2020 eq. 4: q(x_t | x_0) = N(sqrt(alpha-bar_t) x0, (1 - alpha-bar_t) I)."""
        a, _ = self._ab(t, x0.dim())
        _, b = self._ab(t, x0.dim())
        return a * x0, (b * b).expand_as(x0)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Ho et al. 2020 eq. 4: x_t = sqrt(alpha-bar_t) x0 + sqrt(1 - alpha-bar_t) noise."""
        if noise is None:
            noise = randn(x0.shape, generator, x0.device)
        a, b = self._ab(t, x0.dim())
        return a * x0 + b * noise

    def q_posterior_mean_variance(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """Ho et al. 2020 eq. 6-7: q(x_{t-1} | x_t, x_0) as (mean, variance, clipped log-variance)."""
        nd = x_t.dim()
        mean = self._at(self.posterior_mean_coef1, t, nd) * x0 + self._at(self.posterior_mean_coef2, t, nd) * x_t
        variance = self._at(self.posterior_variance, t, nd).expand_as(x_t)
        log_variance = self._at(self.posterior_log_variance_clipped, t, nd).expand_as(x_t)
        return mean, variance, log_variance

    # -- parametrizations ----------------------------------------------------------------------------

    def predict_x0(self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 implied by a network output in this diffusion's parametrization."""
        return param.x0_from_output(self.prediction, model_output, x_t, *self._ab(t, x_t.dim()))

    def predict_eps(self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps implied by a network output in this diffusion's parametrization."""
        return param.eps_from_output(self.prediction, model_output, x_t, *self._ab(t, x_t.dim()))

    def predict_v(self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v implied by a network output in this diffusion's parametrization."""
        if self.prediction == "v":
            return model_output
        a, b = self._ab(t, x_t.dim())
        return param.v_from(param.x0_from_output(self.prediction, model_output, x_t, a, b),
                            param.eps_from_output(self.prediction, model_output, x_t, a, b), a, b)

    def x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return param.x0_from_eps(x_t, eps, *self._ab(t, x_t.dim()))

    def eps_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return param.eps_from_x0(x_t, x0, *self._ab(t, x_t.dim()))

    def to_v(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Salimans & Ho 2022: v = sqrt(alpha-bar) eps - sqrt(1 - alpha-bar) x0."""
        return param.v_from(x0, eps, *self._ab(t, x0.dim()))

    def from_v(self, v: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) from v and x_t (Salimans & Ho 2022)."""
        a, b = self._ab(t, x_t.dim())
        return param.x0_from_v(x_t, v, a, b), param.eps_from_v(x_t, v, a, b)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network should output for x_t = q_sample(x0, t, noise)."""
        return param.training_target(self.prediction, x0, noise, *self._ab(t, x0.dim()))

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio alpha-bar_t / (1 - alpha-bar_t), shape of t."""
        return self.snr_table.to(t.device)[t]

    # -- training ------------------------------------------------------------------------------------

    def sample_timesteps(self, batch_size: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """Timesteps uniform on 0..T-1 (Ho et al. 2020, Algorithm 1), LongTensor (B,) on `device`."""
        if generator is None:
            return torch.randint(0, self.num_timesteps, (batch_size,), device=device)
        drawn = torch.randint(0, self.num_timesteps, (batch_size,), generator=generator, device=generator.device)
        return drawn.to(device)

    def loss_weights(self, t: torch.Tensor, weighting: str = "uniform", min_snr_gamma: float = 5.0) -> torch.Tensor:
        """Per-sample weights (B,): 1 for `uniform` (L_simple), Min-SNR-gamma (Hang et al. 2023) for `min-snr`."""
        if weighting == "uniform":
            return torch.ones(t.shape, device=t.device, dtype=torch.float32)
        if weighting == "min-snr":
            return param.min_snr_weight(self.prediction, self.snr(t), min_snr_gamma)
        raise ValueError(f"weighting {weighting!r} is not one of {', '.join(param.WEIGHTINGS)}")

    def training_losses(self, model_fn: Callable[..., torch.Tensor], x0: torch.Tensor, *,
                        t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                        generator: torch.Generator | None = None, weighting: str = "uniform",
                        min_snr_gamma: float = 5.0, model_kwargs: dict[str, Any] | None = None):
        """Ho et al. 2020, Algorithm 1: MSE between model_fn(x_t, t, **model_kwargs) and the target of this
        parametrization, averaged over all but the batch dimension and weighted per sample.

        Returns (loss (B,) float32, t (B,)). `generator`, when given, draws t and noise (it lives on x0.device).
        """
        x0 = x0.float()
        if t is None:
            t = self.sample_timesteps(x0.shape[0], x0.device, generator)
        if noise is None:
            noise = randn(x0.shape, generator, x0.device)
        a, b = self._ab(t, x0.dim())
        x_t = a * x0 + b * noise
        output = model_fn(x_t, t, **(model_kwargs or {})).float()
        target = param.training_target(self.prediction, x0, noise, a, b)
        mse = (output - target).square().mean(dim=tuple(range(1, x0.dim())))
        return mse * self.loss_weights(t, weighting, min_snr_gamma), t
