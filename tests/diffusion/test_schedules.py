"""Schedules: every built-in against its published formula, the host's validation, custom, zero terminal SNR."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.diffusion.helpers import host_with, schedule_section
from workbench.config import load_config
from workbench.diffusion import build_schedule, rescale_zero_terminal_snr
from workbench.errors import ConfigError, PluginError
from workbench.plugin_host import PluginHost, hookimpl

BUILTIN = ["const", "cosine", "custom", "jsd", "linear", "quadratic", "scaled-linear", "sigmoid", "sigmoid-beta",
           "warmup10", "warmup50"]


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# Each formula written out per index, from the papers / original code, with math only.
def ref_linear(i, T):
    return 1e-4 + (0.02 - 1e-4) * i / (T - 1)


def ref_scaled_linear(i, T):
    return (math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * i / (T - 1)) ** 2


def ref_quadratic(i, T):
    return (math.sqrt(1e-4) + (math.sqrt(0.02) - math.sqrt(1e-4)) * i / (T - 1)) ** 2


def ref_cosine(i, T, s=0.008):
    def f(u):
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    return min(1 - f((i + 1) / T) / f(i / T), 0.999)


def ref_sigmoid(i, T, start=-3.0, end=3.0, tau=1.0):
    def alpha_bar(k):  # already 1 at k = 0, so the normalisation by alpha-bar(0) changes nothing
        u = k / T
        return (sigmoid(end / tau) - sigmoid((u * (end - start) + start) / tau)) / (sigmoid(end / tau) - sigmoid(start / tau))

    return min(1 - alpha_bar(i + 1) / alpha_bar(i), 0.999)


def ref_sigmoid_beta(i, T):
    return sigmoid(-6 + 12 * i / (T - 1)) * (0.02 - 1e-4) + 1e-4


def ref_warmup(frac):
    def ref(i, T):
        w = int(T * frac)
        return 1e-4 + (0.02 - 1e-4) * i / (w - 1) if i < w else 0.02

    return ref


def ref_const(i, T):
    return 0.02


def ref_jsd(i, T):
    return 1.0 / (T - i)  # 1 / linspace(T, 1, T)[i]


REFERENCES = {
    "linear": ref_linear, "scaled-linear": ref_scaled_linear, "quadratic": ref_quadratic, "cosine": ref_cosine,
    "sigmoid": ref_sigmoid, "sigmoid-beta": ref_sigmoid_beta, "warmup10": ref_warmup(0.1),
    "warmup50": ref_warmup(0.5), "const": ref_const, "jsd": ref_jsd,
}


def test_every_builtin_schedule_is_registered_with_its_paper():
    host = PluginHost(load_entry_points=False)
    assert host.registries["schedule"].names() == BUILTIN
    assert all(c.reference and c.factory.__doc__ for c in host.registries["schedule"])
    assert set(REFERENCES) | {"custom"} == set(BUILTIN)


@pytest.mark.parametrize("timesteps", [1000, 37])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_schedule_matches_its_formula(name, timesteps):
    betas = build_schedule(schedule_section(name, timesteps))
    assert betas.dtype == torch.float64 and betas.shape == (timesteps,)
    for i in sorted({0, 1, 2, timesteps // 3, timesteps // 2, timesteps - 2, timesteps - 1}):
        assert float(betas[i]) == pytest.approx(REFERENCES[name](i, timesteps), rel=1e-9, abs=1e-15), i


def test_known_values_of_the_ddpm_and_cosine_schedules():
    # alpha-bar_T of the DDPM linear schedule at T = 1000 is the well-known 4.036e-5.
    alpha_bar = torch.cumprod(1 - build_schedule(schedule_section("linear")), 0)
    assert float(alpha_bar[-1]) == pytest.approx(4.0358e-5, rel=1e-4)
    # The cosine schedule's alpha-bar follows cos^2 away from the capped end (Nichol & Dhariwal 2021, eq. 17).
    alpha_bar = torch.cumprod(1 - build_schedule(schedule_section("cosine")), 0)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 250, 500, 900):
        assert float(alpha_bar[t]) == pytest.approx(f((t + 1) / 1000) / f(0), rel=1e-9)


def test_jsd_reaches_alpha_bar_zero_exactly():
    betas = build_schedule(schedule_section("jsd", 50))
    assert float(betas[-1]) == 1.0
    assert float(torch.cumprod(1 - betas, 0)[-1]) == 0.0


def test_schedule_params_come_from_the_section():
    betas = build_schedule(schedule_section("linear", 10, beta_start=0.001, beta_end=0.05))
    assert float(betas[0]) == pytest.approx(0.001) and float(betas[-1]) == pytest.approx(0.05)
    cos = build_schedule(schedule_section("cosine", 100, s=0.02, max_beta=0.5))
    assert float(cos.max()) == 0.5
    assert float(cos[0]) == pytest.approx(ref_cosine(0, 100, s=0.02), rel=1e-12)


def test_build_schedule_reads_the_config_and_its_overrides(in_tmp_cwd):
    cfg = load_config(overrides=["schedule.name=sigmoid", "schedule.timesteps=64", "schedule.tau=0.5"])
    betas = build_schedule(cfg.schedule)
    assert betas.shape == (64,)
    assert float(betas[10]) == pytest.approx(ref_sigmoid(10, 64, tau=0.5), rel=1e-9)


def test_bad_params_are_config_errors(in_tmp_cwd):
    with pytest.raises(ConfigError, match=r"beta_end = 1.5 must be in \(0, 1\)"):
        load_config(overrides=["schedule.beta_end=1.5"])
    with pytest.raises(ConfigError, match="tau = 0.0 must be > 0"):
        load_config(overrides=["schedule.name=sigmoid", "schedule.tau=0"])


# -- zero terminal SNR (Lin et al. 2023, Algorithm 1) --------------------------------------------------


@pytest.mark.parametrize("name", ["linear", "cosine", "scaled-linear"])
def test_zero_terminal_snr_rescale_follows_algorithm_1(name):
    original = build_schedule(schedule_section(name, 200)).numpy()
    rescaled = build_schedule(schedule_section(name, 200, zero_terminal_snr=True)).numpy()
    sqrt_ab = np.sqrt(np.cumprod(1 - original))
    expected = (sqrt_ab - sqrt_ab[-1]) * sqrt_ab[0] / (sqrt_ab[0] - sqrt_ab[-1])
    np.testing.assert_allclose(np.sqrt(np.cumprod(1 - rescaled)), expected, rtol=1e-10, atol=1e-14)
    assert rescaled[-1] == 1.0 and rescaled[0] == pytest.approx(original[0], rel=1e-10)


def test_zero_terminal_snr_leaves_an_already_zero_end_unchanged():
    betas = build_schedule(schedule_section("jsd", 30))
    np.testing.assert_allclose(rescale_zero_terminal_snr(betas).numpy(), betas.numpy(), rtol=1e-12)


# -- the host's validation of what a schedule plugin returns --------------------------------------------


class BadSchedules:
    """Schedules that break one rule each."""

    @hookimpl
    def register_schedules(self, register):
        def make(fn):
            return lambda timesteps: fn(torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64))

        register("too-short", make(lambda b: b[:-1]))
        register("beta-above-one", make(lambda b: torch.cat([b[:5], torch.tensor([1.5]), b[6:]])))
        register("one-too-early", make(lambda b: torch.cat([b[:7], torch.tensor([1.0]), b[8:]])))
        register("one-at-end", make(lambda b: torch.cat([b[:-1], torch.tensor([1.0])])))
        register("zero-beta", make(lambda b: torch.cat([b[:3], torch.tensor([0.0]), b[4:]])))
        register("nan-beta", make(lambda b: torch.cat([b[:2], torch.tensor([math.nan]), b[3:]])))
        register("a-list", make(lambda b: b.tolist()))
        register("integers", make(lambda b: (b * 0).long()))
        register("two-d", make(lambda b: b[None]))
        register("numpy", make(lambda b: b.numpy()))
        register("float32", make(lambda b: b.float()))
        register("underflow", lambda timesteps: torch.full((timesteps,), 0.9, dtype=torch.float64))
        register("raises", lambda timesteps: 1 / 0)


@pytest.fixture
def bad_host():
    return host_with(BadSchedules(), "badplug")


@pytest.mark.parametrize("name, message", [
    ("too-short", r"returned shape \(19,\); expected \(20,\)"),
    ("beta-above-one", r"beta\[5\] = 1.5 is not in \(0, 1\)"),
    ("one-too-early", r"beta\[7\] = 1.0 is not in \(0, 1\) \(beta = 1 is allowed only at the last index\)"),
    ("zero-beta", r"beta\[3\] = 0.0 is not in"),
    ("nan-beta", r"beta\[2\] = nan is not in"),
    ("a-list", "returned list, not a torch.Tensor"),
    ("integers", "returned a torch.int64 tensor"),
    ("two-d", r"returned shape \(1, 20\)"),
])
def test_an_invalid_schedule_is_refused_naming_schedule_plugin_and_index(bad_host, name, message):
    with pytest.raises(PluginError, match=rf"schedule '{name}' \(plugin badplug\) at timesteps = 20 is invalid: "
                                          + message):
        build_schedule(schedule_section(name, 20, host=bad_host))


@pytest.mark.parametrize("name, timesteps", [("underflow", 5000), ("const", 100_000)])
def test_alpha_bar_underflow_is_named(bad_host, name, timesteps):
    # beta = 0.9 reaches exactly 0; beta = 0.02 stalls in float64's subnormal range instead.
    with pytest.raises(PluginError, match=rf"schedule '{name}' \(plugin \w+\) at timesteps = {timesteps} is invalid: "
                                          r"alpha-bar.*\d+.* underflowed"):
        build_schedule(schedule_section(name, timesteps, host=bad_host))


def test_valid_returns_are_accepted_and_made_float64(bad_host):
    for name in ("one-at-end", "numpy", "float32"):
        betas = build_schedule(schedule_section(name, 20, host=bad_host))
        assert betas.dtype == torch.float64 and betas.shape == (20,)


def test_a_plugin_that_raises_is_named(bad_host):
    with pytest.raises(PluginError, match=r"schedule 'raises' \(plugin badplug\) failed to build at timesteps = 20: "
                                          "ZeroDivisionError"):
        build_schedule(schedule_section("raises", 20, host=bad_host))


def test_an_unknown_schedule_name_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\[schedule\] name = 'cosin': no such schedule \(did you mean \"cosine\"\?\)"):
        build_schedule(schedule_section("cosin"))


# -- custom ------------------------------------------------------------------------------------------


def test_custom_inline_betas_and_alpha_bars():
    betas = build_schedule(schedule_section("custom", 4, betas=[0.1, 0.2, 0.3, 0.4]))
    assert betas.tolist() == [0.1, 0.2, 0.3, 0.4]
    from_alpha_bars = build_schedule(schedule_section("custom", 3, alpha_bars=[0.9, 0.45, 0.0]))
    np.testing.assert_allclose(from_alpha_bars.numpy(), [0.1, 0.5, 1.0], rtol=1e-12)


@pytest.mark.parametrize("suffix", [".npy", ".txt", ".csv", ".json", ".json-object"])
def test_custom_schedule_from_a_file(tmp_path, suffix):
    values = [0.9, 0.7, 0.4, 0.1]  # alpha-bars
    path = tmp_path / ("schedule" + suffix.split("-")[0])
    if suffix == ".npy":
        np.save(path, np.array(values))
    elif suffix == ".txt":
        path.write_text("# alpha-bars, one a line\n" + "\n".join(map(str, values)) + "\n")
    elif suffix == ".csv":
        path.write_text(",".join(map(str, values)) + "\n")
    elif suffix == ".json":
        path.write_text(json.dumps(values))
    else:
        path.write_text(json.dumps({"alpha_bars": values}))
    holds = "betas" if suffix == ".json-object" else "alpha_bars"  # the JSON object's key wins
    betas = build_schedule(schedule_section("custom", 4, file=str(path), file_holds=holds))
    np.testing.assert_allclose(betas.numpy(), [0.1, 1 - 0.7 / 0.9, 1 - 0.4 / 0.7, 1 - 0.1 / 0.4], rtol=1e-12)


def test_custom_length_must_equal_timesteps():
    with pytest.raises(ConfigError, match=r"custom: betas holds 3 betas but timesteps = 1000; set \[schedule\] "
                                          "timesteps = 3 or give 1000 values"):
        build_schedule(schedule_section("custom", 1000, betas=[0.1, 0.2, 0.3]))


def test_custom_needs_exactly_one_source_and_sane_values(tmp_path):
    with pytest.raises(ConfigError, match="give exactly one of betas"):
        build_schedule(schedule_section("custom", 3))
    with pytest.raises(ConfigError, match="got betas, alpha_bars"):
        build_schedule(schedule_section("custom", 1, betas=[0.1], alpha_bars=[0.9]))
    with pytest.raises(ConfigError, match="does not exist"):
        build_schedule(schedule_section("custom", 3, file=str(tmp_path / "missing.npy")))
    (tmp_path / "bad.txt").write_text("0.1\nzero point two\n")
    with pytest.raises(ConfigError, match="cannot read file"):
        build_schedule(schedule_section("custom", 2, file=str(tmp_path / "bad.txt")))
    # Alpha-bars that rise give a negative beta, which the host's validation names.
    with pytest.raises(PluginError, match=r"schedule 'custom' \(plugin schedules\) .* beta\[1\] = -"):
        build_schedule(schedule_section("custom", 3, alpha_bars=[0.5, 0.6, 0.1]))
