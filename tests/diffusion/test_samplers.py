"""Samplers: their timesteps, single steps against the papers' formulas, and whole runs with the exact
denoiser of Gaussian data, which must give back the data's mean and standard deviation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.diffusion.helpers import (
    ddim_shrinkage,
    linear_alpha_bars,
    normal_quantiles,
    optimal_model,
    sample_section,
    schedule_section,
)
from workbench.diffusion import GaussianDiffusion, SamplerStep, build_sampler, build_schedule, sample_images
from workbench.diffusion.sampling import dynamic_threshold_x0
from workbench.diffusion.timesteps import ddim_timesteps, dpm_solver_timesteps, respaced_timesteps
from workbench.errors import ConfigError

T = 1000
ALPHA_BARS = linear_alpha_bars(T)


def returns(x0):
    """A denoise function that predicts `x0` whatever it is asked."""
    return lambda x, t: x0


@pytest.fixture(scope="module")
def diffusion():
    return GaussianDiffusion(torch.linspace(1e-4, 0.02, T, dtype=torch.float64))


# -- timesteps ---------------------------------------------------------------------------------------

# Literal values printed by diffusers 0.42.1 (DDIMScheduler / DPMSolverMultistepScheduler.set_timesteps).
DIFFUSERS_TIMESTEPS = {
    ("leading", 10, 3): [6, 3, 0],
    ("trailing", 10, 3): [9, 6, 2],
    ("linspace", 10, 3): [9, 4, 0],
    ("leading", 1000, 7): [852, 710, 568, 426, 284, 142, 0],
    ("trailing", 1000, 7): [999, 856, 713, 570, 428, 285, 142],
    ("linspace", 1000, 7): [999, 832, 666, 500, 333, 166, 0],
}


@pytest.mark.parametrize("key", sorted(DIFFUSERS_TIMESTEPS))
def test_ddim_spacings_match_diffusers(key):
    spacing, timesteps, steps = key
    assert ddim_timesteps(timesteps, steps, spacing) == DIFFUSERS_TIMESTEPS[key]


def test_ddim_spacings_at_50_steps():
    assert ddim_timesteps(T, 50, "leading") == list(range(980, -1, -20))
    assert ddim_timesteps(T, 50, "trailing") == list(range(999, 0, -20))
    assert ddim_timesteps(T, 50, "linspace") == [round(999 * i / 49) for i in range(49, -1, -1)]


def test_dpm_solver_timesteps_match_diffusers():
    assert dpm_solver_timesteps(T, 20) == [999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 500, 450, 400, 350,
                                           300, 250, 200, 150, 100, 50]
    assert dpm_solver_timesteps(T, 7) == [999, 856, 714, 571, 428, 285, 143]


def test_respacing_follows_improved_diffusion():
    assert respaced_timesteps(10, 4) == [9, 6, 3, 0]
    assert respaced_timesteps(10, 3) == [9, 4, 0]  # round(4.5) = 4, as Python rounds
    assert respaced_timesteps(T, T) == list(range(T - 1, -1, -1))
    assert respaced_timesteps(T, 1) == [0]


# -- single steps against the formulas ----------------------------------------------------------------


def test_ddim_step_is_equation_12(diffusion):
    # linspace: 999, 888, ..., 0, so the next element (111 back) differs from diffusers' t - T // steps (100).
    eta, steps = 0.7, 10
    sampler = build_sampler(sample_section("ddim", eta=eta, spacing="linspace"))
    timesteps = sampler.set_timesteps(diffusion.schedule, steps, torch.device("cpu"))
    x_t, x0 = torch.randn(5, 1, 3, 3), torch.rand(5, 1, 3, 3) * 2 - 1
    for index in (0, 4, steps - 1):
        ab = float(ALPHA_BARS[timesteps[index]])
        ab_prev = float(ALPHA_BARS[timesteps[index + 1]]) if index + 1 < steps else 1.0
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(1 - ab / ab_prev)
        eps = (x_t - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        z = torch.randn(5, 1, 3, 3, generator=torch.Generator().manual_seed(index)) if index < steps - 1 else 0
        want = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0)) * eps + sigma * z
        got = sampler.step(index, x_t, returns(x0), torch.Generator().manual_seed(index))
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
    assert torch.equal(sampler.step(steps - 1, x_t, returns(x0), None), x0)  # the last step lands on x0


@pytest.mark.parametrize("variance", ["fixed-small", "fixed-large"])
@pytest.mark.parametrize("steps", [T, 10])
def test_ddpm_step_samples_the_posterior(diffusion, variance, steps):
    sampler = build_sampler(sample_section("ddpm", variance=variance))
    timesteps = sampler.set_timesteps(diffusion.schedule, steps, torch.device("cpu"))
    assert len(timesteps) == steps
    x_t, x0 = torch.randn(4, 1, 2, 2), torch.rand(4, 1, 2, 2) * 2 - 1
    for index in (0, steps // 2, steps - 2):
        t, t_prev = timesteps[index], timesteps[index + 1]
        ab, ab_prev = float(ALPHA_BARS[t]), float(ALPHA_BARS[t_prev])
        beta = 1 - ab / ab_prev  # the (respaced) chain's beta between the two kept steps
        mean = beta * math.sqrt(ab_prev) / (1 - ab) * x0 + (1 - ab_prev) * math.sqrt(1 - beta) / (1 - ab) * x_t
        if variance == "fixed-small":
            var = beta * (1 - ab_prev) / (1 - ab)
        else:
            var = beta
        z = torch.randn(4, 1, 2, 2, generator=torch.Generator().manual_seed(index))
        got = sampler.step(index, x_t, returns(x0), torch.Generator().manual_seed(index))
        torch.testing.assert_close(got, mean + math.sqrt(var) * z, atol=2e-5, rtol=1e-4)
    # The last step (to t = 0) returns the posterior mean, which at alpha-bar_{-1} = 1 is x0, without noise.
    torch.testing.assert_close(sampler.step(steps - 1, x_t, returns(x0), None), x0)


def test_ddpm_fixed_large_first_variance_is_the_posterior_variance_at_1(diffusion):
    # improved-diffusion: np.append(posterior_variance[1], betas[1:]); visible on the step to t = 0 ... but
    # that step adds no noise, so check the step from t = 1, whose variance is beta_1.
    sampler = build_sampler(sample_section("ddpm", variance="fixed-large"))
    sampler.set_timesteps(diffusion.schedule, T, torch.device("cpu"))
    assert float(sampler._std[T - 2]) == pytest.approx(math.sqrt(float(diffusion.schedule.betas[1])), rel=1e-6)


def reference_dpm_solver_pp_2m(x0_fn, x, timesteps, alpha_bars):
    """diffusers' DPMSolverMultistepScheduler(dpmsolver++, order 2, midpoint, lower_order_final) in float64,
    written in its own log-SNR form: sigmas = sqrt((1 - ab) / ab) with a final 0."""
    sigmas = [math.sqrt((1 - float(alpha_bars[t])) / float(alpha_bars[t])) for t in timesteps] + [0.0]

    def alpha_sigma(sig):
        alpha = 1 / math.sqrt(sig**2 + 1)
        return alpha, sig * alpha

    def lam(sig):
        alpha, sigma = alpha_sigma(sig)
        return math.log(alpha) - math.log(sigma) if sigma > 0 else math.inf

    outputs = []
    for i, t in enumerate(timesteps):
        m0 = x0_fn(x, t)
        outputs.append(m0)
        alpha_t, sigma_t = alpha_sigma(sigmas[i + 1])
        _, sigma_s0 = alpha_sigma(sigmas[i])
        h = lam(sigmas[i + 1]) - lam(sigmas[i])
        exp_neg_h = math.exp(-h)
        if i == 0 or i == len(timesteps) - 1:
            x = (sigma_t / sigma_s0) * x - alpha_t * (exp_neg_h - 1.0) * m0
        else:
            h_0 = lam(sigmas[i]) - lam(sigmas[i - 1])
            d0, d1 = m0, (1.0 / (h_0 / h)) * (m0 - outputs[-2])
            x = (sigma_t / sigma_s0) * x - alpha_t * (exp_neg_h - 1.0) * d0 - 0.5 * alpha_t * (exp_neg_h - 1.0) * d1
    return x


@pytest.mark.parametrize("steps", [1, 2, 3, 7])
def test_dpm_solver_pp_matches_the_diffusers_update(diffusion, steps):
    model = optimal_model(ALPHA_BARS, mu=0.2, s=0.6, prediction="x0")
    x_T = torch.randn(32, 1, 1, 1, generator=torch.Generator().manual_seed(4))
    want = reference_dpm_solver_pp_2m(lambda x, t: model(x, torch.full((32,), t)).double(), x_T.double(),
                                      dpm_solver_timesteps(T, steps), ALPHA_BARS)
    x0_diffusion = GaussianDiffusion(diffusion.schedule.betas, "x0")
    got = sample_images(model, x0_diffusion, build_sampler(sample_section("dpm-solver++")), x_T.shape,
                        steps=steps, noise=x_T, clip_x0=False)
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-5)


# -- whole runs with the exact denoiser of N(mu, s^2) data ------------------------------------------------

MU, S, N = 0.5, 1.0, 20_000  # clipping is off: s = 1 data leaves [-1, 1], and clipping would bias both moments

# Tolerances: the Monte-Carlo standard errors at N = 20000 are s/sqrt(N) = 0.007 (mean) and ~0.005 (std); the
# rest is each sampler's own discretization error with an exact denoiser, measured here for these data:
# ddpm at 1000 steps and dpm-solver++ at 20 steps: < 0.5% of the std; deterministic DDIM at 50 steps loses
# 3.6% of the std (the product of cos(delta theta), see helpers.ddim_shrinkage), DDIM eta = 1 at 50 steps
# (a 50-step DDPM whose fixed variance omits coef1^2 Var[x0 | x_t]) 6.5%; heun at 20 linspace steps (39 network
# calls) 1.7%, at 30 karras steps 2.1% (the karras steps crowd at small sigma, as the paper intends).
RUNS = [
    ("ddpm", {"variance": "fixed-small"}, 1000, 0.02),
    ("ddpm", {"variance": "fixed-large"}, 1000, 0.02),
    ("ddim", {"eta": 0.0, "spacing": "leading"}, 50, 0.05),
    ("ddim", {"eta": 0.0, "spacing": "trailing"}, 50, 0.05),
    ("ddim", {"eta": 0.0, "spacing": "linspace"}, 50, 0.05),
    ("ddim", {"eta": 1.0, "spacing": "leading"}, 50, 0.085),
    ("ddim", {"eta": 1.0, "spacing": "trailing"}, 50, 0.085),
    ("ddim", {"eta": 1.0, "spacing": "linspace"}, 50, 0.085),
    ("dpm-solver++", {}, 20, 0.02),
    ("heun", {"spacing": "linspace"}, 20, 0.03),
    ("heun", {"spacing": "karras"}, 30, 0.035),
]


@pytest.mark.parametrize("name, params, steps, std_tolerance", RUNS,
                         ids=[f"{r[0]}-{'-'.join(map(str, r[1].values()))}-{r[2]}" for r in RUNS])
def test_the_exact_denoiser_reproduces_gaussian_data(diffusion, name, params, steps, std_tolerance):
    model = optimal_model(ALPHA_BARS, MU, S, "eps")
    sampler = build_sampler(sample_section(name, **params))
    x = sample_images(model, diffusion, sampler, (N, 1, 1, 1), steps=steps,
                      generator=torch.Generator().manual_seed(0), clip_x0=False)
    assert x.dtype == torch.float32 and x.shape == (N, 1, 1, 1) and torch.isfinite(x).all()
    assert abs(float(x.mean()) - MU) < 0.03
    assert abs(float(x.std()) / S - 1) < std_tolerance


@pytest.mark.parametrize("spacing", ["linspace", "karras"])
def test_heun_calls_the_network_twice_per_step_but_not_on_the_last(diffusion, spacing):
    exact = optimal_model(ALPHA_BARS, MU, S, "eps")
    times = []

    def model(x_t, t):
        times.append(float(t[0]))
        return exact(x_t, t)

    seen = []
    x = sample_images(model, diffusion, build_sampler(sample_section("heun", spacing=spacing)), (4, 1, 2, 2),
                      steps=6, noise=torch.randn(4, 1, 2, 2), clip_x0=False, callback=seen.append)
    assert len(times) == 2 * 6 - 1 and len(seen) == 6
    # step i evaluates at its own timestep, then (corrector) at the next one; the last step is Euler only
    assert times[0::2] == pytest.approx([float(s.t) for s in seen], abs=0.5)
    assert times[1::2] == times[2::2]
    assert times[0] == T - 1 and times[-1] == 0
    torch.testing.assert_close(x, seen[-1].pred_x0)  # the last Euler step to sigma = 0 lands on the prediction


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_deterministic_ddim_shrinks_the_spread_exactly_as_predicted(diffusion, spacing):
    # x0 ~ N(0, 1) and quantile 'noise': no sampling error, so the output std must equal the prediction.
    model = optimal_model(ALPHA_BARS, 0.0, 1.0, "eps")
    x_T = normal_quantiles(4000).reshape(-1, 1, 1, 1)
    x = sample_images(model, diffusion, build_sampler(sample_section("ddim", spacing=spacing)), x_T.shape,
                      steps=50, noise=x_T, clip_x0=False)
    predicted = ddim_shrinkage(ALPHA_BARS, ddim_timesteps(T, 50, spacing)) * float(x_T.std())
    assert float(x.std()) == pytest.approx(predicted, rel=2e-3)
    assert abs(float(x.mean())) < 1e-3


def test_ddpm_respaced_equals_ddim_with_eta_1_on_the_same_timesteps(diffusion):
    # Two derivations of the same chain (the respaced posterior of improved-diffusion, and DDIM eq. 12 with
    # eta = 1 on linspace timesteps, which are the respaced ones) must agree sample for sample.
    model = optimal_model(ALPHA_BARS, MU, 0.5, "eps")
    runs = [sample_images(model, diffusion, build_sampler(section), (256, 1, 2, 2), steps=25,
                          generator=torch.Generator().manual_seed(5))
            for section in (sample_section("ddpm"), sample_section("ddim", eta=1.0, spacing="linspace"))]
    torch.testing.assert_close(runs[0], runs[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_every_parametrization_gives_the_same_samples(diffusion, prediction):
    x_T = torch.randn(512, 1, 1, 1, generator=torch.Generator().manual_seed(2))
    results = []
    for pred in ("eps", prediction):
        d = GaussianDiffusion(diffusion.schedule.betas, pred)
        sampler = build_sampler(sample_section("dpm-solver++"))
        results.append(sample_images(optimal_model(ALPHA_BARS, MU, 0.5, pred), d, sampler, x_T.shape, steps=20,
                                     noise=x_T, clip_x0=False))
    torch.testing.assert_close(results[0], results[1], atol=2e-3, rtol=1e-3)


# -- the loop: reproducibility, callback, options, errors -----------------------------------------------


@pytest.mark.parametrize("section", [sample_section("ddpm"), sample_section("ddim", eta=1.0)])
def test_the_same_seed_gives_the_same_samples(diffusion, section):
    model = optimal_model(ALPHA_BARS, MU, 0.5, "eps")

    def run(seed):
        return sample_images(model, diffusion, build_sampler(section), (8, 1, 4, 4), steps=20,
                             generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


@pytest.mark.parametrize("section, steps", [(sample_section("ddpm"), 30), (sample_section("ddim"), 12),
                                            (sample_section("dpm-solver++"), 9), (sample_section("heun"), 7)])
def test_the_callback_sees_every_step(diffusion, section, steps):
    seen: list[SamplerStep] = []
    x = sample_images(optimal_model(ALPHA_BARS, 0.0, 0.5, "eps"), diffusion, build_sampler(section), (3, 1, 2, 2),
                      steps=steps, generator=torch.Generator().manual_seed(0), callback=seen.append)
    assert [s.index for s in seen] == list(range(steps)) and {s.total for s in seen} == {steps}
    assert all(isinstance(s.t, int) for s in seen) and [s.t for s in seen] == sorted((s.t for s in seen), reverse=True)
    assert all(s.x_t.shape == s.pred_x0.shape == (3, 1, 2, 2) for s in seen)
    if section.name != "ddpm":  # their last step lands exactly on the final prediction of x0
        assert torch.equal(x, seen[-1].pred_x0)


def test_clipping_and_dynamic_thresholding(diffusion):
    wild = lambda x_t, t: torch.full_like(x_t, -40.0)  # noqa: E731 - an eps that implies a huge x0
    for options in ({"clip_x0": True}, {"clip_x0": False, "dynamic_threshold": 0.9}):
        seen = []
        sample_images(wild, diffusion, build_sampler(sample_section("ddim")), (2, 1, 3, 3), steps=5,
                      generator=torch.Generator().manual_seed(0), callback=seen.append, **options)
        assert all(float(s.pred_x0.abs().max()) <= 1.0 + 1e-6 for s in seen)
    unclipped = []
    sample_images(wild, diffusion, build_sampler(sample_section("ddim")), (2, 1, 3, 3), steps=5, clip_x0=False,
                  generator=torch.Generator().manual_seed(0), callback=unclipped.append)
    assert float(unclipped[-1].pred_x0.abs().max()) > 1.0


def test_dynamic_threshold_is_saharia_et_al():
    x0 = torch.stack([torch.linspace(-0.5, 0.5, 16), torch.linspace(-4.0, 2.0, 16)]).reshape(2, 1, 4, 4)
    got = dynamic_threshold_x0(x0, 0.8)
    for i in range(2):
        values = x0[i].flatten().numpy().astype(np.float64)
        s = max(float(np.quantile(np.abs(values), 0.8)), 1.0)  # numpy's default linear interpolation
        want = np.clip(values, -s, s) / s
        np.testing.assert_allclose(got[i].flatten().numpy(), want, rtol=1e-5, atol=1e-6)
    assert torch.equal(got[0], x0[0])  # |x0| <= 1 already: s = 1 leaves it alone


@pytest.mark.parametrize("steps", [0, T + 1])
def test_steps_outside_1_to_T_are_config_errors(diffusion, steps):
    with pytest.raises(ConfigError, match=rf"\[sample\] steps = {steps} must be an integer from 1 to the "
                                          rf"schedule's timesteps \({T}\)"):
        sample_images(lambda x, t: x, diffusion, build_sampler(sample_section("ddim")), (1, 1, 2, 2), steps=steps)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("section", [sample_section("ddpm", variance="fixed-large"),
                                     sample_section("ddim", eta=1.0, spacing="trailing"),
                                     sample_section("dpm-solver++"), sample_section("heun", spacing="karras")],
                         ids=["ddpm", "ddim", "dpm", "heun"])
def test_zero_terminal_snr_samples_without_nan(section, prediction):
    betas = build_schedule(schedule_section("linear", 100, zero_terminal_snr=True))
    d = GaussianDiffusion(betas, prediction)
    seen = []
    x = sample_images(optimal_model(torch.cumprod(1 - betas, 0), 0.1, 0.4, prediction), d, build_sampler(section),
                      (64, 1, 2, 2), steps=100 if section.name == "ddpm" else 10, callback=seen.append,
                      generator=torch.Generator().manual_seed(0))
    assert seen[0].t == 99  # starts at alpha-bar = 0
    assert torch.isfinite(x).all() and all(torch.isfinite(s.pred_x0).all() for s in seen)


def test_sampler_params_are_checked(in_tmp_cwd):
    from workbench.config import load_config

    cfg = load_config(overrides=["sample.name=ddim", "sample.eta=0.5", "sample.spacing=trailing"])
    sampler = build_sampler(cfg.sample)
    assert (sampler.eta, sampler.spacing) == (0.5, "trailing")
    with pytest.raises(ConfigError, match=r"eta = 2.0 must be in \[0, 1\]"):
        load_config(overrides=["sample.name=ddim", "sample.eta=2"])
    with pytest.raises(ConfigError, match="spacing = 'middle'"):
        load_config(overrides=["sample.name=ddim", "sample.spacing=middle"])
    with pytest.raises(ConfigError, match="variance = 'learned'"):
        load_config(overrides=["sample.name=ddpm", "sample.variance=learned"])
    with pytest.raises(ConfigError, match="spacing = 'leading'; choose one of linspace, karras"):
        load_config(overrides=["sample.name=heun", "sample.spacing=leading"])
