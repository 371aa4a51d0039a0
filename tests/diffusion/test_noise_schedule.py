"""The public schedule view samplers read: its tables, sub-chain posteriors and fractional timesteps."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from tests.diffusion.helpers import linear_alpha_bars
from workbench.diffusion import GaussianDiffusion, NoiseSchedule
from workbench.diffusion.sampling import make_denoiser

T = 1000
ALPHA_BARS = linear_alpha_bars(T)


@pytest.fixture(scope="module")
def schedule():
    return GaussianDiffusion(torch.linspace(1e-4, 0.02, T, dtype=torch.float64), "v").schedule


def test_the_view_holds_float64_cpu_tables_and_the_prediction(schedule):
    assert schedule.num_timesteps == T and schedule.prediction == "v"
    for table in (schedule.betas, schedule.alphas_cumprod, schedule.sqrt_alphas_cumprod,
                  schedule.sqrt_one_minus_alphas_cumprod, schedule.sigmas):
        assert table.dtype == torch.float64 and table.device.type == "cpu" and table.shape == (T,)
    torch.testing.assert_close(schedule.alphas_cumprod, ALPHA_BARS, atol=0, rtol=1e-12)
    torch.testing.assert_close(schedule.sigmas, ((1 - ALPHA_BARS) / ALPHA_BARS).sqrt(), atol=0, rtol=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.prediction = "eps"


def test_the_view_does_not_move_with_the_diffusion(schedule):
    diffusion = GaussianDiffusion(torch.linspace(1e-4, 0.02, 10, dtype=torch.float64)).to("meta")
    assert diffusion.schedule.alphas_cumprod.device.type == "cpu"


def test_zero_terminal_snr_keeps_sigmas_finite():
    betas = torch.linspace(1e-4, 0.02, 10, dtype=torch.float64)
    betas[-1] = 1.0
    view = NoiseSchedule.from_betas(betas)
    assert float(view.alphas_cumprod[-1]) == 0.0
    assert float(view.sigmas[-1]) == pytest.approx(math.sqrt((1 - 2**-24) / 2**-24))  # diffusers' 2**-24 stand-in
    assert torch.isfinite(view.sigmas).all()


def test_the_posterior_of_a_sub_chain_is_ho_et_al_eq_7_with_respaced_betas(schedule):
    kept = [0, 250, 500, 999]
    post = schedule.posterior(kept)
    for i, t in enumerate(kept):
        ab, ab_prev = float(ALPHA_BARS[t]), float(ALPHA_BARS[kept[i - 1]]) if i else 1.0
        beta = 1 - ab / ab_prev
        assert float(post.betas[i]) == pytest.approx(beta, rel=1e-9)
        assert float(post.mean_coef1[i]) == pytest.approx(beta * math.sqrt(ab_prev) / (1 - ab), rel=1e-9)
        assert float(post.mean_coef2[i]) == pytest.approx((1 - ab_prev) * math.sqrt(1 - beta) / (1 - ab), rel=1e-9)
        assert float(post.variance[i]) == pytest.approx(beta * (1 - ab_prev) / (1 - ab), rel=1e-9, abs=1e-300)
    assert float(post.log_variance_clipped[0]) == pytest.approx(math.log(float(post.variance[1])))
    full = schedule.posterior()  # the whole chain is the diffusion's own posterior
    torch.testing.assert_close(full.mean_coef1, GaussianDiffusion(schedule.betas).float64["posterior_mean_coef1"])


def test_fractional_timesteps_interpolate_log_sigma_and_invert(schedule):
    sigmas = schedule.sigmas.numpy()
    assert schedule.sigma_at([3.0, 998.0]) == pytest.approx(sigmas[[3, 998]], rel=1e-12)
    halfway = math.exp(0.5 * (math.log(sigmas[500]) + math.log(sigmas[501])))
    assert float(schedule.sigma_at([500.5])[0]) == pytest.approx(halfway, rel=1e-12)
    t = np.array([0.0, 0.25, 17.5, 500.5, 998.9, 999.0])
    np.testing.assert_allclose(schedule.timestep_of(schedule.sigma_at(t)), t, atol=1e-9)
    # outside the table: clamped to its ends, as diffusers' _sigma_to_t
    np.testing.assert_allclose(schedule.timestep_of([sigmas[0] / 2, sigmas[-1] * 2]), [0.0, 999.0])


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_denoise_converts_at_table_and_fractional_timesteps(prediction):
    view = NoiseSchedule.from_betas(torch.linspace(1e-4, 0.02, T, dtype=torch.float64), prediction)
    x0, eps = torch.full((2, 1, 2, 2), 0.3), torch.randn(2, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    for t in (torch.tensor([10, 700]), torch.tensor([10.0, 700.5])):
        ab = torch.tensor([1 / (1 + float(view.sigma_at([float(s)])[0]) ** 2) for s in t]).reshape(-1, 1, 1, 1)
        a, b = ab.sqrt().float(), (1 - ab).sqrt().float()
        x_t = a * x0 + b * eps
        output = {"eps": eps, "x0": x0, "v": a * eps - b * x0}[prediction]
        denoise = make_denoiser(lambda x, tt: output, view, "cpu", clip_x0=False)
        torch.testing.assert_close(denoise(x_t, t), x0, atol=2e-4, rtol=1e-4)
