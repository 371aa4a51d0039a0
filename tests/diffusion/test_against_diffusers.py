"""Cross-checks against huggingface diffusers itself, when it is installed (`pip install -e .[bench]`).

The other tests check the same behaviour against the formulas and against diffusers' update rules written
out; these compare whole trajectories with the real schedulers, so a change on either side shows up."""

from __future__ import annotations

import pytest
import torch

from tests.diffusion.helpers import optimal_model, sample_section
from workbench.diffusion import GaussianDiffusion, build_sampler, rescale_zero_terminal_snr, sample_images

diffusers = pytest.importorskip("diffusers")

PREDICTION_TYPES = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}


def run_diffusers(scheduler, model, x_T, steps):
    scheduler.set_timesteps(steps)
    x = x_T.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t.repeat(x.shape[0])), t, x).prev_sample
    return x, [int(t) for t in scheduler.timesteps]


def run_ours(sampler_section, prediction, model, x_T, steps, betas):
    seen = []
    x = sample_images(model, GaussianDiffusion(betas, prediction), build_sampler(sampler_section), x_T.shape,
                      steps=steps, noise=x_T, clip_x0=False, callback=lambda s: seen.append(s.t))
    return x, seen


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("steps", [1, 2, 5, 20, 25])
def test_dpm_solver_pp_matches_diffusers(prediction, steps):
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    model = optimal_model(torch.cumprod(1 - betas, 0), 0.3, 0.5, prediction)
    x_T = torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    scheduler = diffusers.DPMSolverMultistepScheduler(
        beta_schedule="linear", algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
        lower_order_final=True, prediction_type=PREDICTION_TYPES[prediction])
    theirs, their_steps = run_diffusers(scheduler, model, x_T, steps)
    ours, our_steps = run_ours(sample_section("dpm-solver++"), prediction, model, x_T, steps, betas)
    assert our_steps == their_steps
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)  # diffusers works in float32 throughout


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("spacing, steps", [("leading", 50), ("trailing", 50), ("trailing", 40)])
def test_ddim_matches_diffusers_where_both_step_to_the_next_element(prediction, spacing, steps):
    # diffusers steps to t - T // steps, which is the next element of these sequences (not of linspace's).
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    model = optimal_model(torch.cumprod(1 - betas, 0), 0.3, 0.5, prediction)
    x_T = torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(2))
    scheduler = diffusers.DDIMScheduler(beta_schedule="linear", clip_sample=False, set_alpha_to_one=True,
                                        prediction_type=PREDICTION_TYPES[prediction], timestep_spacing=spacing)
    theirs, their_steps = run_diffusers(scheduler, model, x_T, steps)
    ours, our_steps = run_ours(sample_section("ddim", spacing=spacing), prediction, model, x_T, steps, betas)
    assert our_steps == their_steps
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_schedules_match_diffusers():
    from diffusers.schedulers.scheduling_ddim import betas_for_alpha_bar, rescale_zero_terminal_snr as theirs

    from workbench_plugins.schedules import cosine_betas, scaled_linear_betas

    torch.testing.assert_close(cosine_betas(1000), betas_for_alpha_bar(1000).double(), atol=1e-7, rtol=1e-5)
    scheduler = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    torch.testing.assert_close(scaled_linear_betas(1000), scheduler.betas.double(), atol=1e-8, rtol=1e-5)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    torch.testing.assert_close(rescale_zero_terminal_snr(betas), theirs(betas))


def run_diffusers_heun(scheduler, model, x_T, steps):
    """diffusers' Heun loop, started from our x_T (variance-preserving, std 1) scaled to sigma_max, and the
    sample it holds after each whole step (every second model call), back in the variance-preserving picture."""
    scheduler.set_timesteps(steps)
    sigmas = scheduler.sigmas  # [s0, s1, s1, s2, s2, ..., 0]
    x = x_T * (sigmas[0] ** 2 + 1) ** 0.5
    after_steps, calls = [], 0
    for i, t in enumerate(scheduler.timesteps):
        out = model(scheduler.scale_model_input(x, t), t.repeat(x.shape[0]))
        calls += 1
        x = scheduler.step(out, t, x).prev_sample
        if i % 2 == 0:  # a whole step is done after the first call and then after each second-order call
            continue
        after_steps.append(x / (float(sigmas[i + 1]) ** 2 + 1) ** 0.5)
    return x, after_steps, calls, [float(t) for t in scheduler.timesteps[::2]]


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("spacing, steps", [("linspace", 10), ("linspace", 4), ("karras", 10), ("karras", 25)])
def test_heun_matches_diffusers_step_for_step(prediction, spacing, steps):
    # linspace at 4 and 10 steps of 1000 lands on table entries (999 / 3, 999 / 9 are integers), where
    # diffusers' linear sigma interpolation and our log-sigma one agree; karras sigmas fall between entries.
    scheduler = diffusers.HeunDiscreteScheduler(beta_schedule="linear", prediction_type=PREDICTION_TYPES[prediction],
                                                use_karras_sigmas=spacing == "karras")
    # The same schedule on both sides: ours from diffusers' float32 alpha-bar. (From float64 betas instead,
    # sigma_min = sigma at t = 0 differs by 1e-4 relative, as 1 - alpha-bar_0 = 1e-4 keeps few float32 digits.)
    alpha_bars = scheduler.alphas_cumprod.double()
    betas = 1 - alpha_bars / torch.cat([alpha_bars.new_ones(1), alpha_bars[:-1]])
    calls = []
    exact = optimal_model(alpha_bars, 0.3, 0.5, prediction)

    def model(x, t):
        calls.append(t[0].item())
        return exact(x, t)

    x_T = torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(3))
    theirs, their_steps, their_calls, their_times = run_diffusers_heun(scheduler, model, x_T, steps)
    calls.clear()
    seen = []
    heun = build_sampler(sample_section("heun", spacing=spacing))
    ours = sample_images(model, GaussianDiffusion(betas, prediction), heun, x_T.shape, steps=steps, noise=x_T,
                         clip_x0=False, callback=seen.append)
    assert len(calls) == their_calls == 2 * steps - 1
    assert calls[0::2] == pytest.approx(their_times, abs=1e-3)  # the same (fractional) timesteps
    assert [s.t for s in seen] == [round(t) for t in their_times]
    for step in range(1, steps):  # x at the start of each step = diffusers' sample after the previous one
        torch.testing.assert_close(seen[step].x_t, their_steps[step - 1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
