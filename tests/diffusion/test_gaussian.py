"""The forward process, the posterior, the parametrizations and the training loss of GaussianDiffusion."""

from __future__ import annotations

import math

import pytest
import torch

from tests.diffusion.helpers import linear_alpha_bars, schedule_section
from workbench.config import load_config
from workbench.diffusion import GaussianDiffusion, build_schedule

T = 1000


@pytest.fixture(scope="module")
def betas():
    return torch.linspace(1e-4, 0.02, T, dtype=torch.float64)


def jsd_betas(timesteps=20):
    """Ends at alpha-bar = 0 (beta = 1 at the last index)."""
    return build_schedule(schedule_section("jsd", timesteps))


def test_tables_match_the_formulas(betas):
    d = GaussianDiffusion(betas)
    ab = linear_alpha_bars(T)
    assert d.num_timesteps == T and d.prediction == "eps"
    for name in GaussianDiffusion.TABLES:
        assert getattr(d, name).dtype == torch.float32 and d.float64[name].dtype == torch.float64
    assert float(d.float64["alphas_cumprod_prev"][0]) == 1.0
    for t in (1, 2, 100, 500, 999):
        beta, a_t, a_prev = float(betas[t]), float(ab[t]), float(ab[t - 1])
        variance = beta * (1 - a_prev) / (1 - a_t)
        assert float(d.float64["alphas_cumprod"][t]) == pytest.approx(a_t, rel=1e-10)
        assert float(d.float64["posterior_variance"][t]) == pytest.approx(variance, rel=1e-9)
        assert float(d.float64["posterior_mean_coef1"][t]) == pytest.approx(beta * math.sqrt(a_prev) / (1 - a_t), rel=1e-9)
        assert float(d.float64["posterior_mean_coef2"][t]) == pytest.approx(
            (1 - a_prev) * math.sqrt(1 - beta) / (1 - a_t), rel=1e-9)
        assert float(d.float64["posterior_log_variance_clipped"][t]) == pytest.approx(math.log(variance), rel=1e-9)
    # t = 0: the posterior is a point mass at x0; its log-variance is clipped to the value at t = 1.
    assert float(d.float64["posterior_variance"][0]) == 0.0
    assert float(d.float64["posterior_log_variance_clipped"][0]) == float(d.float64["posterior_log_variance_clipped"][1])


def test_q_sample_has_the_right_mean_and_variance(betas):
    d = GaussianDiffusion(betas)
    n = 200_000
    x0 = torch.tensor([-0.8, 0.0, 0.6]).repeat(n, 1).reshape(n, 3, 1, 1)
    g = torch.Generator().manual_seed(0)
    for t_index in (0, 300, 999):
        t = torch.full((n,), t_index, dtype=torch.long)
        x_t = d.q_sample(x0, t, generator=g)
        ab = float(linear_alpha_bars(T)[t_index])
        mean, var = x_t.mean(0).flatten(), x_t.var(0).flatten()
        se_mean, se_var = math.sqrt((1 - ab) / n), (1 - ab) * math.sqrt(2 / n)
        torch.testing.assert_close(mean, math.sqrt(ab) * torch.tensor([-0.8, 0.0, 0.6]), atol=5 * se_mean, rtol=0)
        torch.testing.assert_close(var, torch.full((3,), 1 - ab), atol=5 * se_var, rtol=0)
        q_mean, q_var = d.q_mean_variance(x0[:2], t[:2])
        torch.testing.assert_close(q_var, torch.full_like(q_var, 1 - ab))


def test_q_sample_uses_the_given_noise(betas):
    d = GaussianDiffusion(betas)
    x0, noise, t = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2), torch.tensor([0, 10, 500, 999])
    ab = linear_alpha_bars(T)[t].float().reshape(4, 1, 1, 1)
    torch.testing.assert_close(d.q_sample(x0, t, noise), ab.sqrt() * x0 + (1 - ab).sqrt() * noise)


def bayes_posterior(x0: float, x_t: float, ab_prev: float, beta: float) -> tuple[float, float]:
    """q(x_{t-1} | x_t, x0) from Bayes' rule with the prior q(x_{t-1} | x0) = N(sqrt(ab_prev) x0, 1 - ab_prev)
    and the likelihood q(x_t | x_{t-1}) = N(sqrt(1 - beta) x_{t-1}, beta): precisions add."""
    precision = 1 / (1 - ab_prev) + (1 - beta) / beta
    mean = (math.sqrt(ab_prev) * x0 / (1 - ab_prev) + math.sqrt(1 - beta) * x_t / beta) / precision
    return mean, 1 / precision


@pytest.mark.parametrize("schedule", ["linear", "jsd"])
def test_posterior_matches_bayes_rule(betas, schedule):
    b = betas if schedule == "linear" else jsd_betas()
    d = GaussianDiffusion(b)
    ab = torch.cumprod(1 - b, 0)
    for t_index in (1, 5, len(b) // 2, len(b) - 1):  # for jsd the last index has beta = 1, alpha-bar = 0
        x0, x_t = 0.7, -1.3
        mean, var, log_var = d.q_posterior_mean_variance(torch.tensor([[x0]]), torch.tensor([[x_t]]),
                                                         torch.tensor([t_index]))
        want_mean, want_var = bayes_posterior(x0, x_t, float(ab[t_index - 1]), float(b[t_index]))
        assert float(mean) == pytest.approx(want_mean, rel=1e-5, abs=1e-6)
        assert float(var) == pytest.approx(want_var, rel=1e-5)
        assert float(log_var) == pytest.approx(math.log(want_var), rel=1e-5, abs=1e-6)
    # t = 0: alpha-bar_{-1} = 1, so x_{-1} is x0 itself.
    mean, var, _ = d.q_posterior_mean_variance(torch.tensor([[0.7]]), torch.tensor([[-1.3]]), torch.tensor([0]))
    assert float(mean) == pytest.approx(0.7, rel=1e-6) and float(var) == 0.0


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_parametrization_round_trips(betas, prediction):
    d = GaussianDiffusion(betas, prediction)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(64, 3, 4, 4, generator=g), torch.randn(64, 3, 4, 4, generator=g)
    t = torch.randint(0, T, (64,), generator=g)
    x_t = d.q_sample(x0, t, eps)
    ab = linear_alpha_bars(T)[t].float().reshape(-1, 1, 1, 1)
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0  # Salimans & Ho 2022
    output = {"eps": eps, "x0": x0, "v": v}[prediction]
    torch.testing.assert_close(d.target(x0, eps, t), output)
    # Large t and an eps model amplify float32 rounding by 1/sqrt(alpha-bar) (~150 at t = 999).
    tol = dict(atol=2e-3, rtol=1e-3) if prediction == "eps" else dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(d.predict_x0(output, x_t, t), x0, **tol)
    torch.testing.assert_close(d.predict_eps(output, x_t, t), eps, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(d.predict_v(output, x_t, t), v, **tol)
    torch.testing.assert_close(d.to_v(x0, eps, t), v)
    back_x0, back_eps = d.from_v(v, x_t, t)
    torch.testing.assert_close(back_x0, x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(back_eps, eps, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(d.eps_from_x0(x_t, t, x0), eps, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(d.x0_from_eps(x_t, t, eps), x0, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_alpha_bar_zero_gives_no_nan(prediction):
    d = GaussianDiffusion(jsd_betas(), prediction)
    t = torch.full((8,), 19)
    x0, eps = torch.rand(8, 1, 2, 2) * 2 - 1, torch.randn(8, 1, 2, 2)
    x_t = d.q_sample(x0, t, eps)
    torch.testing.assert_close(x_t, eps)  # pure noise
    target = d.target(x0, eps, t)
    for value in (d.predict_x0(target, x_t, t), d.predict_eps(target, x_t, t), d.predict_v(target, x_t, t)):
        assert torch.isfinite(value).all()
    torch.testing.assert_close(d.predict_eps(target, x_t, t), eps)
    if prediction != "eps":  # v and x0 still carry x0 at zero SNR; eps cannot
        torch.testing.assert_close(d.predict_x0(target, x_t, t), x0)
    assert float(d.snr(t)[0]) == 0.0


def test_a_tiny_but_nonzero_alpha_bar_is_used_as_it_is():
    # cosine's last alpha-bar is 2.4e-9 (sqrt 4.9e-5): Ho et al.'s x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab)
    # must divide by it exactly; a floor there (only alpha-bar = 0 needs one) pulled x0 toward 0
    d = GaussianDiffusion(build_schedule(schedule_section("cosine")), "eps")
    t = torch.full((1,), 999)
    ab = float(d.float64["alphas_cumprod"][999])
    assert 0 < ab < 1e-8
    x_t = torch.tensor([[[[math.sqrt(ab) * 0.7 + math.sqrt(1 - ab) * 0.3]]]], dtype=torch.float32)
    x0 = d.predict_x0(torch.full_like(x_t, 0.3), x_t, t)
    # float32 rounding of x_t (~6e-8) divided by sqrt(ab) bounds the error at ~1e-3
    assert float(x0) == pytest.approx(0.7, abs=5e-3)


def test_snr(betas):
    d = GaussianDiffusion(betas)
    ab = linear_alpha_bars(T)
    t = torch.tensor([0, 250, 999])
    torch.testing.assert_close(d.snr(t), (ab[t] / (1 - ab[t])).float())


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_weights(prediction):
    d = GaussianDiffusion(jsd_betas(), prediction)
    gamma = 5.0
    t = torch.arange(20)
    weights = d.loss_weights(t, "min-snr", gamma)
    ab = torch.cumprod(1 - jsd_betas(), 0)
    for i in range(20):
        snr = float(ab[i] / (1 - ab[i]))
        if snr == 0:  # the limits as SNR -> 0
            want = {"eps": 1.0, "x0": 0.0, "v": 0.0}[prediction]
        else:
            want = {"eps": min(snr, gamma) / snr, "x0": min(snr, gamma), "v": min(snr, gamma) / (snr + 1)}[prediction]
        assert float(weights[i]) == pytest.approx(want, rel=1e-5), i
    assert weights.max() > weights.min()  # the weighting varies across t for every parametrization
    assert torch.equal(d.loss_weights(t, "uniform"), torch.ones(20))


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_training_losses(betas, prediction):
    d = GaussianDiffusion(betas, prediction)
    g = torch.Generator().manual_seed(3)
    x0, noise = torch.randn(6, 2, 3, 3, generator=g), torch.randn(6, 2, 3, 3, generator=g)
    t = torch.tensor([0, 1, 10, 400, 998, 999])
    ab = linear_alpha_bars(T)[t].float().reshape(-1, 1, 1, 1)
    target = {"eps": noise, "x0": x0, "v": ab.sqrt() * noise - (1 - ab).sqrt() * x0}[prediction]
    seen = {}

    def zero_model(x_t, t_in, label=None):
        seen.update(x_t=x_t, t=t_in, label=label)
        return torch.zeros_like(x_t)

    loss, t_out = d.training_losses(zero_model, x0, t=t, noise=noise, model_kwargs={"label": 7})
    assert loss.shape == (6,) and loss.dtype == torch.float32 and torch.equal(t_out, t)
    torch.testing.assert_close(seen["x_t"], ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    assert seen["label"] == 7
    torch.testing.assert_close(loss, target.square().mean(dim=(1, 2, 3)))  # mean over C, H, W per sample
    exact, _ = d.training_losses(lambda x_t, t_in: d.target(x0, noise, t_in), x0, t=t, noise=noise)
    assert float(exact.abs().max()) < 1e-10
    weighted, _ = d.training_losses(zero_model, x0, t=t, noise=noise, weighting="min-snr", min_snr_gamma=2.0)
    torch.testing.assert_close(weighted, loss * d.loss_weights(t, "min-snr", 2.0))


def test_training_losses_draw_t_and_noise_reproducibly(betas):
    d = GaussianDiffusion(betas)
    x0 = torch.randn(16, 1, 4, 4)
    model = lambda x_t, t: x_t * 0.5  # noqa: E731
    first = d.training_losses(model, x0, generator=torch.Generator().manual_seed(9))
    second = d.training_losses(model, x0, generator=torch.Generator().manual_seed(9))
    other = d.training_losses(model, x0, generator=torch.Generator().manual_seed(10))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[1], other[1])


def test_sample_timesteps_are_uniform():
    d = GaussianDiffusion(torch.linspace(1e-4, 0.02, 10, dtype=torch.float64))
    t = d.sample_timesteps(100_000, "cpu", torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and t.shape == (100_000,) and int(t.min()) == 0 and int(t.max()) == 9
    counts = torch.bincount(t, minlength=10).double()
    assert float((counts - 10_000).abs().max()) < 5 * math.sqrt(10_000 * 0.9)


def test_from_config_and_to(in_tmp_cwd):
    cfg = load_config(overrides=["schedule.name=cosine", "schedule.timesteps=100", "train.prediction=v"])
    d = GaussianDiffusion.from_config(cfg)
    assert d.num_timesteps == 100 and d.prediction == "v"
    assert d.to("cpu") is d and d.betas.device.type == "cpu"
    torch.testing.assert_close(d.float64["betas"], build_schedule(cfg.schedule))


def test_bad_arguments_are_refused(betas):
    with pytest.raises(ValueError, match="prediction 'noise'"):
        GaussianDiffusion(betas, "noise")
    with pytest.raises(ValueError, match=r"beta\[0\]"):
        GaussianDiffusion(torch.tensor([0.0, 0.1], dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 timesteps"):  # the posterior needs a t = 1
        GaussianDiffusion(torch.tensor([0.1], dtype=torch.float64))
    with pytest.raises(ValueError, match="weighting"):
        GaussianDiffusion(betas).loss_weights(torch.tensor([1]), "snr")
