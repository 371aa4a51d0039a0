"""Built-in samplers: ddpm (ancestral), ddim, dpm-solver++ (2M) and heun (2nd order, Karras et al. 2022),
each a `workbench.diffusion.Sampler`.

Every sampler computes its per-step coefficients once in `set_timesteps`, in float64 from the public
NoiseSchedule, and casts them once to float32 tensors on the sampling device; `step` calls the denoise
function it is given and only indexes those tensors with the Python step index, so the loop never
synchronizes with the device. torch is imported lazily so that loading the plugin host stays cheap.
"""

from __future__ import annotations

import numpy as np

from workbench.plugin_host import hookimpl

DDPM_VARIANCES = ("fixed-small", "fixed-large")


def _one_of(name: str, value, choices) -> str:
    """`value` when it is one of `choices`, else the ValueError the host turns into a config error."""
    if value not in choices:
        raise ValueError(f"{name} = {value!r}; choose one of {', '.join(choices)}")
    return value


def _on_device(values, device):
    import torch

    return torch.tensor(np.array(values, dtype=np.float64)).to(device, torch.float32)


def _alpha_bars(schedule) -> np.ndarray:
    return schedule.alphas_cumprod.numpy()


def _at(timestep: int, x):
    """The per-batch timestep tensor `denoise` takes."""
    import torch

    return torch.full((x.shape[0],), timestep, dtype=torch.long, device=x.device)


class DDPMSampler:
    """Ho et al. 2020, Algorithm 2: ancestral sampling from the posterior q(x_{t-1} | x_t, x0 = pred_x0).

    With fewer steps than T it runs improved-diffusion's respaced chain (Nichol & Dhariwal 2021): the kept
    timesteps of `space_timesteps(T, str(steps))` with betas 1 - alpha-bar_t / alpha-bar_prev-kept. Variance
    `fixed-small` is the posterior variance; `fixed-large` is beta_t with its first entry replaced by the
    posterior variance at index 1, as improved-diffusion. The last step (t = 0) adds no noise.
    """

    name = "ddpm"
    calls_denoise = True

    def __init__(self, variance: str = "fixed-small"):
        self.variance = _one_of("variance", variance, DDPM_VARIANCES)

    def set_timesteps(self, schedule, steps: int, device) -> list[int]:
        from workbench.diffusion.timesteps import respaced_timesteps

        kept = respaced_timesteps(schedule.num_timesteps, steps)[::-1]  # ascending, like the tables
        posterior = schedule.posterior(kept)
        betas = posterior.betas.numpy()
        if self.variance == "fixed-small":
            variance = posterior.variance.numpy().copy()
        else:
            variance = np.concatenate([posterior.variance.numpy()[1:2], betas[1:]]) if len(kept) > 1 else betas
        std = np.sqrt(variance)
        std[0] = 0.0  # no noise when stepping to x_0 (improved-diffusion's nonzero_mask)
        # Stored in step order (descending timesteps).
        self._coef1 = _on_device(posterior.mean_coef1.numpy()[::-1], device)
        self._coef2 = _on_device(posterior.mean_coef2.numpy()[::-1], device)
        self._std = _on_device(std[::-1], device)
        self._timesteps = kept[::-1]
        self._last = len(kept) - 1
        return self._timesteps

    def step(self, index: int, x_t, denoise, generator):
        from workbench.diffusion.noise import randn

        pred_x0 = denoise(x_t, _at(self._timesteps[index], x_t))
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
    calls_denoise = True

    def __init__(self, eta: float = 0.0, spacing: str = "leading"):
        from workbench.diffusion.timesteps import DDIM_SPACINGS

        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta = {eta} must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like)")
        self.eta = float(eta)
        self.spacing = _one_of("spacing", spacing, DDIM_SPACINGS)

    def set_timesteps(self, schedule, steps: int, device) -> list[int]:
        from workbench.diffusion.timesteps import ddim_timesteps

        timesteps = ddim_timesteps(schedule.num_timesteps, steps, self.spacing)
        alpha_bars = _alpha_bars(schedule)
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
        self._timesteps = timesteps
        return timesteps

    def step(self, index: int, x_t, denoise, generator):
        from workbench.diffusion.noise import randn

        pred_x0 = denoise(x_t, _at(self._timesteps[index], x_t))
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
    calls_denoise = True

    def set_timesteps(self, schedule, steps: int, device) -> list[int]:
        from workbench.diffusion.timesteps import dpm_solver_timesteps

        timesteps = dpm_solver_timesteps(schedule.num_timesteps, steps)
        ab = np.concatenate([_alpha_bars(schedule)[timesteps], [1.0]])
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
        self._timesteps = timesteps
        return timesteps

    def step(self, index: int, x_t, denoise, generator):
        pred_x0 = denoise(x_t, _at(self._timesteps[index], x_t))
        x = self._c_x[index] * x_t + self._c_0[index] * pred_x0
        if self._second[index]:
            x = x + self._c_1[index] * self._previous_x0
        self._previous_x0 = pred_x0
        return x


HEUN_SPACINGS = ("linspace", "karras")
KARRAS_RHO = 7.0


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = KARRAS_RHO) -> np.ndarray:
    """Karras et al. 2022, eq. 5: sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
    descending (k-diffusion's get_sigmas_karras, diffusers' use_karras_sigmas), without the final 0."""
    ramp = np.linspace(0.0, 1.0, steps)
    max_inv_rho, min_inv_rho = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


class HeunSampler:
    """Karras et al. 2022 (EDM), Algorithm 1 (deterministic Heun) on the discrete eps/x0/v model, as diffusers'
    HeunDiscreteScheduler: in the variance-exploding picture x / sqrt(alpha-bar) = x0 + sigma eps, each step
    takes an Euler step dx/dsigma = (x - x0(x, sigma)) / sigma to the next sigma and corrects it with the
    average of the slopes at both ends; the last step, to sigma = 0, is Euler only. `steps` Heun steps call
    the network 2 * steps - 1 times.

    spacing `linspace` (diffusers' default): timesteps linspace(0, T-1, steps), descending; `karras`: sigmas by
    eq. 5 with rho = 7 between the schedule's smallest and largest sigma. Timesteps between table entries are
    fractional, with log-sigma interpolated (NoiseSchedule.sigma_at / timestep_of, diffusers' `_sigma_to_t`)."""

    name = "heun"
    calls_denoise = True

    def __init__(self, spacing: str = "linspace"):
        self.spacing = _one_of("spacing", spacing, HEUN_SPACINGS)

    def set_timesteps(self, schedule, steps: int, device) -> list[int]:
        last = schedule.num_timesteps - 1
        if self.spacing == "karras":
            table = schedule.sigmas.numpy()
            sigmas = karras_sigmas(float(table[0]), float(table[-1]), steps)
            times = schedule.timestep_of(sigmas)
        else:
            times = np.linspace(0.0, last, steps)[::-1].copy()
            sigmas = schedule.sigma_at(times)
        sigmas = np.concatenate([sigmas, [0.0]])
        scale = np.sqrt(1.0 + sigmas**2)  # x_ve = x * scale; 1 at sigma = 0
        self._times = [float(t) for t in times]
        self._scale_in = _on_device(scale[:-1], device)
        self._scale_out = _on_device(1.0 / scale[1:], device)
        self._sigma = _on_device(sigmas[:-1], device)
        self._dt = _on_device(sigmas[1:] - sigmas[:-1], device)
        self._sigma_next = _on_device(np.where(sigmas[1:] > 0, sigmas[1:], 1.0), device)  # used where > 0
        self._corrected = [bool(s > 0) for s in sigmas[1:]]
        return [min(last, max(0, round(t))) for t in times]

    def _time(self, index: int, x):
        import torch

        return torch.full((x.shape[0],), self._times[index], dtype=torch.float32, device=x.device)

    def step(self, index: int, x_t, denoise, generator):
        pred_x0 = denoise(x_t, self._time(index, x_t))
        if not self._corrected[index]:
            return pred_x0  # the Euler step to sigma = 0, x + (0 - sigma) (x - x0) / sigma, is x0 exactly
        x = x_t * self._scale_in[index]  # x0 + sigma eps
        slope = (x - pred_x0) / self._sigma[index]
        x_next = x + self._dt[index] * slope  # Euler
        pred_next = denoise(x_next * self._scale_out[index], self._time(index + 1, x_t))
        slope_next = (x_next - pred_next) / self._sigma_next[index]
        x_next = x + self._dt[index] * (0.5 * (slope + slope_next))  # trapezoidal correction
        return x_next * self._scale_out[index]

def _validate_ddpm(params: dict) -> None:
    DDPMSampler(**params)


def _validate_ddim(params: dict) -> None:
    DDIMSampler(**params)


def _validate_heun(params: dict) -> None:
    HeunSampler(**params)


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
    register("heun", HeunSampler, params={"spacing": "linspace"}, validate=_validate_heun,
             reference="Karras et al. 2022 (EDM), Algorithm 1",
             description="2nd-order ODE solver; 2*steps-1 network calls; spacing linspace or karras (rho 7)")
