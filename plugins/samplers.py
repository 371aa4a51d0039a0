"""Built-in samplers: ddpm (ancestral), ddim and dpm-solver++ (2M), each a `workbench.diffusion.Sampler`.

Every sampler computes its per-step coefficients once in `set_timesteps`, in float64 from the diffusion's
float64 tables, and casts them once to float32 tensors on the sampling device; `step` only indexes them
with the Python step index, so the loop never synchronizes with the device. torch is imported lazily so
that loading the plugin host stays cheap.
"""

from __future__ import annotations

import numpy as np

from workbench.plugin_host import hookimpl

DDPM_VARIANCES = ("fixed-small", "fixed-large")


def _on_device(values, device):
    import torch

    return torch.tensor(np.array(values, dtype=np.float64)).to(device, torch.float32)


def _alpha_bars(diffusion) -> np.ndarray:
    return diffusion.float64["alphas_cumprod"].numpy()


class DDPMSampler:
    """Ho et al. 2020, Algorithm 2: ancestral sampling from the posterior q(x_{t-1} | x_t, x0 = pred_x0).

    With fewer steps than T it runs improved-diffusion's respaced chain (Nichol & Dhariwal 2021): the kept
    timesteps of `space_timesteps(T, str(steps))` with betas 1 - alpha-bar_t / alpha-bar_prev-kept. Variance
    `fixed-small` is the posterior variance; `fixed-large` is beta_t with its first entry replaced by the
    posterior variance at index 1, as improved-diffusion. The last step (t = 0) adds no noise.
    """

    name = "ddpm"

    def __init__(self, variance: str = "fixed-small"):
        if variance not in DDPM_VARIANCES:
            raise ValueError(f"variance = {variance!r}; choose one of {', '.join(DDPM_VARIANCES)}")
        self.variance = variance

    def set_timesteps(self, diffusion, steps: int, device) -> list[int]:
        import torch

        from workbench.diffusion.gaussian import GaussianDiffusion
        from workbench.diffusion.timesteps import respaced_timesteps

        kept = respaced_timesteps(diffusion.num_timesteps, steps)[::-1]  # ascending, like the tables
        alpha_bar = _alpha_bars(diffusion)[kept]
        alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
        betas = 1.0 - alpha_bar / alpha_bar_prev
        tables = {k: v.numpy() for k, v in GaussianDiffusion._tables(torch.from_numpy(betas)).items()}
        if self.variance == "fixed-small":
            variance = tables["posterior_variance"].copy()
        else:
            variance = np.concatenate([tables["posterior_variance"][1:2], betas[1:]]) if len(kept) > 1 else betas
        std = np.sqrt(variance)
        std[0] = 0.0  # no noise when stepping to x_0 (improved-diffusion's nonzero_mask)
        # Stored in step order (descending timesteps).
        self._coef1 = _on_device(tables["posterior_mean_coef1"][::-1], device)
        self._coef2 = _on_device(tables["posterior_mean_coef2"][::-1], device)
        self._std = _on_device(std[::-1], device)
        self._last = len(kept) - 1
        return kept[::-1]

    def step(self, index: int, x_t, pred_x0, generator):
        from workbench.diffusion.noise import randn

        mean = self._coef1[index] * pred_x0 + self._coef2[index] * x_t
        if index == self._last:
            return mean
        return mean + self._std[index] * randn(x_t.shape, generator, x_t.device)


class DDIMSampler:
    """Song et al. 2021 (DDIM), eq. 12 on the sub-sequence tau chosen by `spacing` (diffusers' definitions):
    x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z, where the previous timestep is the
    next element of tau (alpha-bar_prev = 1 after the last) and
    sigma = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev). eta = 0 is deterministic."""

    name = "ddim"

    def __init__(self, eta: float = 0.0, spacing: str = "leading"):
        from workbench.diffusion.timesteps import DDIM_SPACINGS

        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta = {eta} must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like)")
        if spacing not in DDIM_SPACINGS:
            raise ValueError(f"spacing = {spacing!r}; choose one of {', '.join(DDIM_SPACINGS)}")
        self.eta = float(eta)
        self.spacing = spacing

    def set_timesteps(self, diffusion, steps: int, device) -> list[int]:
        from workbench.diffusion.timesteps import ddim_timesteps

        timesteps = ddim_timesteps(diffusion.num_timesteps, steps, self.spacing)
        alpha_bars = _alpha_bars(diffusion)
        ab = alpha_bars[timesteps]
        ab_prev = np.concatenate([alpha_bars[timesteps[1:]], [1.0]])
        sigma = self.eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab)) * np.sqrt(1.0 - ab / ab_prev)
        direction = np.sqrt(np.clip(1.0 - ab_prev - sigma**2, 0.0, None))  # >= 0 exactly; clip float rounding
        self._a_t = _on_device(np.sqrt(ab), device)
        self._b_t = _on_device(np.sqrt(1.0 - ab), device)
        self._a_prev = _on_device(np.sqrt(ab_prev), device)
        self._direction = _on_device(direction, device)
        self._sigma = _on_device(sigma, device)
        self._noisy = [bool(s > 0) for s in sigma]
        return timesteps

    def step(self, index: int, x_t, pred_x0, generator):
        from workbench.diffusion.noise import randn

        eps = (x_t - self._a_t[index] * pred_x0) / self._b_t[index]  # re-derived from the processed x0
        x = self._a_prev[index] * pred_x0 + self._direction[index] * eps
        if self._noisy[index]:
            x = x + self._sigma[index] * randn(x_t.shape, generator, x_t.device)
        return x


class DPMSolverPlusPlusSampler:
    """Lu et al. 2022 (DPM-Solver++), multistep second order (2M) with data prediction, midpoint form, as
    diffusers DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
    solver_type="midpoint", lower_order_final=True): first order on the first step and on the final step,
    which goes to alpha-bar = 1 (final_sigmas_type="zero"), timesteps by its default "linspace" spacing."""

    name = "dpm-solver++"

    def set_timesteps(self, diffusion, steps: int, device) -> list[int]:
        from workbench.diffusion.timesteps import dpm_solver_timesteps

        timesteps = dpm_solver_timesteps(diffusion.num_timesteps, steps)
        ab = np.concatenate([_alpha_bars(diffusion)[timesteps], [1.0]])
        alpha, sigma = np.sqrt(ab), np.sqrt(1.0 - ab)
        with np.errstate(divide="ignore"):
            lam = np.log(alpha) - np.log(sigma)  # -inf where alpha-bar = 0, +inf at the end
        n = len(timesteps)
        c_x, c_0, c_1 = np.ones(n), np.zeros(n), np.zeros(n)
        second = [False] * n
        for i in range(n):
            if i + 1 < n and timesteps[i + 1] == timesteps[i]:
                continue  # a repeated timestep (h = 0): the update is the identity
            # exp(-h) = exp(lambda_s - lambda_t), written with ratios so it stays finite where lambda is not.
            exp_neg_h = (alpha[i] * sigma[i + 1]) / (sigma[i] * alpha[i + 1])
            c_x[i] = sigma[i + 1] / sigma[i]
            first = alpha[i + 1] * (1.0 - exp_neg_h)  # = -alpha_t (exp(-h) - 1)
            c_0[i] = first
            if 0 < i < n - 1:
                with np.errstate(divide="ignore", invalid="ignore"):
                    inv_r0 = (lam[i + 1] - lam[i]) / (lam[i] - lam[i - 1])  # h / h_0; 0 when h_0 is infinite
                if np.isfinite(inv_r0):
                    # D0 + D1/2 with D1 = (m0 - m1) / r0 (diffusers' midpoint 2M update)
                    c_0[i] = first * (1.0 + 0.5 * inv_r0)
                    c_1[i] = -first * 0.5 * inv_r0
                    second[i] = True
        self._c_x, self._c_0, self._c_1 = (_on_device(c, device) for c in (c_x, c_0, c_1))
        self._second = second
        self._previous_x0 = None
        return timesteps

    def step(self, index: int, x_t, pred_x0, generator):
        x = self._c_x[index] * x_t + self._c_0[index] * pred_x0
        if self._second[index]:
            x = x + self._c_1[index] * self._previous_x0
        self._previous_x0 = pred_x0
        return x


def _validate_ddpm(params: dict) -> None:
    DDPMSampler(**params)


def _validate_ddim(params: dict) -> None:
    DDIMSampler(**params)


@hookimpl
def register_samplers(register):
    register("ddpm", DDPMSampler, params={"variance": "fixed-small"}, validate=_validate_ddpm,
             reference="Ho et al. 2020 (DDPM); respacing: Nichol & Dhariwal 2021",
             description="ancestral sampling; variance fixed-small or fixed-large")
    register("ddim", DDIMSampler, params={"eta": 0.0, "spacing": "leading"}, validate=_validate_ddim,
             reference="Song et al. 2021 (DDIM)",
             description="DDIM; eta 0 deterministic, 1 DDPM-like; spacing leading, trailing or linspace")
    register("dpm-solver++", DPMSolverPlusPlusSampler, reference="Lu et al. 2022 (DPM-Solver++)",
             description="2nd-order multistep ODE solver (2M), data prediction")
