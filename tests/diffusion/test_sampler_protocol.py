"""A third party can add a sampler by implementing the small `Sampler` protocol; the host checks it. Samplers
written for the earlier protocol (step given pred_x0) still run, through the loop's adapter."""

from __future__ import annotations

import math

import pytest
import torch

from tests.diffusion.helpers import host_with, sample_section
from workbench.diffusion import (GaussianDiffusion, PerImageGenerators, Sampler, build_sampler, randn,
                                 sample_images)
from workbench.errors import ConfigError, PluginError
from workbench.plugin_host import hookimpl


class StridedDDIM:
    """A minimal third-party sampler of the EARLIER protocol (no `calls_denoise` marker: it reads the diffusion's
    float64 tables and is handed pred_x0): DDIM's deterministic update, on every `stride`-th timestep."""

    name = "tiny"

    def __init__(self, stride: int = 1):
        self.stride = stride

    def set_timesteps(self, diffusion, steps, device):
        timesteps = list(range(diffusion.num_timesteps - 1, -1, -self.stride))[:steps]
        ab = diffusion.float64["alphas_cumprod"]
        prev = [float(ab[t]) for t in timesteps[1:]] + [1.0]
        self._a = torch.tensor([float(ab[t]) for t in timesteps], dtype=torch.float64).sqrt().float().to(device)
        self._a_prev = torch.tensor(prev, dtype=torch.float64).sqrt().float().to(device)
        return timesteps

    def step(self, index, x_t, pred_x0, generator):
        a, a_prev = self._a[index], self._a_prev[index]
        eps = (x_t - a * pred_x0) / (1 - a * a).sqrt()
        return a_prev * pred_x0 + (1 - a_prev * a_prev).sqrt() * eps


class MidpointSampler:
    """A third-party sampler of the current protocol that calls the network twice per step: the explicit
    midpoint method on the probability-flow ODE in sigma, x / sqrt(alpha-bar) = x0 + sigma eps."""

    calls_denoise = True

    def set_timesteps(self, schedule, steps, device):
        self._t = list(range(schedule.num_timesteps - 1, -1, -max(1, schedule.num_timesteps // steps)))[:steps]
        sigmas = [float(schedule.sigmas[t]) for t in self._t] + [0.0]
        self._sigma, self._next = sigmas[:-1], sigmas[1:]
        self._mid = [float(schedule.timestep_of([math.sqrt(a * b)])[0]) if b > 0 else 0.0
                     for a, b in zip(self._sigma, self._next)]
        return self._t

    def step(self, index, x, denoise, generator):
        sigma, sigma_next = self._sigma[index], self._next[index]
        full = lambda t: torch.full((x.shape[0],), t, device=x.device)  # noqa: E731
        x_ve = x * math.sqrt(1 + sigma**2)
        slope = (x_ve - denoise(x, full(self._t[index]))) / sigma
        if sigma_next == 0:
            return x_ve - sigma * slope
        sigma_mid = math.sqrt(sigma * sigma_next)
        x_mid = x_ve + (sigma_mid - sigma) * slope
        mid_x0 = denoise(x_mid / math.sqrt(1 + sigma_mid**2), full(self._mid[index]))  # float t: between entries
        return (x_ve + (sigma_next - sigma) * (x_mid - mid_x0) / sigma_mid) / math.sqrt(1 + sigma_next**2)


class Plugin:
    @hookimpl
    def register_samplers(self, register):
        register("tiny", StridedDDIM, params={"stride": 1}, description="a test sampler")
        register("midpoint", MidpointSampler, description="a sampler with two network calls per step")
        register("not-a-sampler", lambda: object())
        register("bad-timesteps", lambda: BadTimesteps())
        register("refuses", lambda: (_ for _ in ()).throw(ValueError("needs a GPU")))
        register("crashes", lambda: 1 / 0)


class BadTimesteps:
    def set_timesteps(self, diffusion, steps, device):
        return [diffusion.num_timesteps]  # one past the end

    def step(self, index, x_t, pred_x0, generator):
        return x_t


@pytest.fixture
def host():
    return host_with(Plugin(), "thirdparty")


def test_a_third_party_sampler_runs_through_the_shared_loop(host):
    sampler = build_sampler(sample_section("tiny", stride=2, host=host))
    assert isinstance(sampler, Sampler) and sampler.stride == 2
    diffusion = GaussianDiffusion(torch.linspace(1e-4, 0.02, 100, dtype=torch.float64))
    seen = []
    x = sample_images(lambda x_t, t: torch.zeros_like(x_t), diffusion, sampler, (2, 1, 3, 3), steps=10,
                      generator=torch.Generator().manual_seed(0), callback=seen.append)
    assert [s.t for s in seen] == list(range(99, 79, -2))
    assert torch.isfinite(x).all()


def test_a_sampler_may_call_the_network_twice_per_step(host):
    from tests.diffusion.helpers import optimal_model

    diffusion = GaussianDiffusion(torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    exact = optimal_model(torch.cumprod(1 - diffusion.schedule.betas, 0), 0.5, 1.0, "eps")
    calls, seen = [], []

    def model(x_t, t):
        calls.append(t.dtype)
        return exact(x_t, t)

    x = sample_images(model, diffusion, build_sampler(sample_section("midpoint", host=host)), (20_000, 1, 1, 1),
                      steps=25, generator=torch.Generator().manual_seed(0), clip_x0=False, callback=seen.append)
    assert len(calls) == 2 * 25 - 1 and len(seen) == 25  # the callback still runs once per step
    assert calls[:2] == [torch.int64, torch.float32]  # its own timestep, then a fractional one
    assert [s.t for s in seen] == list(range(999, -1, -40))
    # a working 2nd-order ODE solver: std within 0.01 (its Euler half alone gives 0.93 here)
    assert abs(float(x.mean()) - 0.5) < 0.03 and abs(float(x.std()) - 1.0) < 0.01


@pytest.mark.parametrize("name, error, message", [
    ("not-a-sampler", PluginError, r"sampler 'not-a-sampler' \(plugin thirdparty\) built a object, which lacks "
                                   r"set_timesteps\(\) and step\(\)"),
    ("refuses", ConfigError, r"\[sample\] sampler 'refuses' \(plugin thirdparty\) refused its parameters: needs a GPU"),
    ("crashes", PluginError, r"sampler 'crashes' \(plugin thirdparty\) failed to build: ZeroDivisionError"),
])
def test_a_broken_sampler_plugin_is_named(host, name, error, message):
    with pytest.raises(error, match=message):
        build_sampler(sample_section(name, host=host))


def test_timesteps_out_of_range_are_refused(host):
    diffusion = GaussianDiffusion(torch.linspace(1e-4, 0.02, 10, dtype=torch.float64))
    with pytest.raises(PluginError, match=r"set_timesteps\(\) must return a non-empty list of ints in 0..9, got \[10\]"):
        sample_images(lambda x, t: x, diffusion, build_sampler(sample_section("bad-timesteps", host=host)),
                      (1, 1, 2, 2), steps=1)


def test_randn_draws_on_the_generator_device_reproducibly():
    first = randn((3, 4), torch.Generator().manual_seed(1), "cpu")
    again = randn((3, 4), torch.Generator().manual_seed(1), torch.device("cpu"))
    assert torch.equal(first, again) and first.dtype == torch.float32
    assert torch.equal(first, torch.randn((3, 4), generator=torch.Generator().manual_seed(1)))


def test_per_image_generators_give_each_row_its_own_stream():
    def streams(seeds):
        return PerImageGenerators(torch.Generator().manual_seed(s) for s in seeds)

    batch = randn((3, 2, 4), streams([10, 11, 12]), "cpu")
    for row, seed in enumerate([10, 11, 12]):  # row i is exactly what its generator alone draws
        assert torch.equal(batch[row], torch.randn((2, 4), generator=torch.Generator().manual_seed(seed)))
    # so a row does not depend on its neighbours: the same stream in a batch of one draws the same noise
    assert torch.equal(randn((1, 2, 4), streams([11]), "cpu")[0], batch[1])
    with pytest.raises(ValueError, match="one generator per row"):
        randn((2, 2, 4), streams([10, 11, 12]), "cpu")


def test_a_sampler_gives_an_image_the_same_noise_in_any_batch_with_per_image_generators():
    from tests.diffusion.helpers import linear_alpha_bars, optimal_model

    diffusion = GaussianDiffusion(torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    model = optimal_model(linear_alpha_bars(), 0.1, 0.5, "eps")
    x_t = torch.randn((4, 1, 8, 8), generator=torch.Generator().manual_seed(0))

    def run(rows, seed=100):
        streams = PerImageGenerators(torch.Generator().manual_seed(seed + r) for r in rows)
        return sample_images(model, diffusion, build_sampler(sample_section("ddpm")), (len(rows), 1, 8, 8),
                             steps=10, generator=streams, noise=x_t[rows])

    whole, pair = run([0, 1, 2, 3]), run([2, 3])
    torch.testing.assert_close(pair, whole[2:], atol=1e-6, rtol=0)
    assert not torch.allclose(run([2, 3], seed=200), pair)  # and the per-step streams really matter


@pytest.mark.cuda
def test_a_cpu_generator_gives_the_same_samples_on_cuda():
    from tests.diffusion.helpers import linear_alpha_bars, optimal_model

    diffusion = GaussianDiffusion(torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    model = optimal_model(linear_alpha_bars(), 0.1, 0.5, "eps")
    runs = [sample_images(model, diffusion, build_sampler(sample_section("ddim", eta=1.0)), (4, 1, 8, 8), steps=20,
                          generator=torch.Generator().manual_seed(3), device=device).cpu()
            for device in ("cpu", "cuda")]
    torch.testing.assert_close(runs[0], runs[1], atol=1e-4, rtol=1e-4)
