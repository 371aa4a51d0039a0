"""Built-in noise schedules: plain functions of T returning float64 betas, each citing its paper.

Every function computes in float64 with numpy and returns a float64 torch tensor of length T (torch is
imported lazily so that loading the plugin host stays cheap). The host (workbench.diffusion.schedule)
validates what comes back, applies `[schedule] zero_terminal_snr`, and casts once to float32 tables.

`linear`, `quadratic`, `warmup10`, `warmup50`, `const` and `jsd` are exactly the schedules of the original
DDPM code (diffusion_utils_2.get_beta_schedule); like it, `linear` is NOT rescaled by 1000/T, so a small T
with the default betas leaves a lot of signal at the last step (`ddpm-workbench schedules` shows how much).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from workbench.errors import ConfigError
from workbench.plugin_host import hookimpl


def _tensor(betas: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(betas, dtype=np.float64))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# -- the schedules -----------------------------------------------------------------------------------


def linear_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02):
    """Ho et al. 2020: betas linear from beta_start to beta_end (DDPM 'linear', not rescaled by 1000/T)."""
    return _tensor(np.linspace(beta_start, beta_end, timesteps, dtype=np.float64))


def scaled_linear_betas(timesteps: int, beta_start: float = 0.00085, beta_end: float = 0.012):
    """Rombach et al. 2022 (Stable Diffusion, diffusers 'scaled_linear'): sqrt(beta) linear."""
    return _tensor(np.linspace(beta_start**0.5, beta_end**0.5, timesteps, dtype=np.float64) ** 2)


def quadratic_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02):
    """Ho et al. 2020 (DDPM code 'quad'): sqrt(beta) linear from sqrt(beta_start) to sqrt(beta_end)."""
    return _tensor(np.linspace(beta_start**0.5, beta_end**0.5, timesteps, dtype=np.float64) ** 2)


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999):
    """Nichol & Dhariwal 2021: alpha-bar(t) = cos(((t/T) + s) / (1 + s) * pi/2)**2, betas capped at max_beta."""

    def alpha_bar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / timesteps) / alpha_bar(i / timesteps), max_beta) for i in range(timesteps)]
    return _tensor(np.array(betas, dtype=np.float64))


def sigmoid_betas(timesteps: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0, max_beta: float = 0.999):
    """Chen 2023 (On the importance of noise scheduling): alpha-bar follows a sigmoid of t, betas capped."""
    t = np.linspace(0, timesteps, timesteps + 1, dtype=np.float64) / timesteps
    v_start = _sigmoid(start / tau)
    v_end = _sigmoid(end / tau)
    alpha_bar = (-_sigmoid((t * (end - start) + start) / tau) + v_end) / (v_end - v_start)
    alpha_bar = alpha_bar / alpha_bar[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return _tensor(np.clip(betas, 0, max_beta))


def sigmoid_beta_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02):
    """Xu et al. 2022 (GeoDiff): betas = sigmoid(linspace(-6, 6, T)) * (beta_end - beta_start) + beta_start."""
    ramp = _sigmoid(np.linspace(-6, 6, timesteps, dtype=np.float64))
    return _tensor(ramp * (beta_end - beta_start) + beta_start)


def _warmup(timesteps: int, beta_start: float, beta_end: float, warmup_frac: float) -> np.ndarray:
    betas = beta_end * np.ones(timesteps, dtype=np.float64)
    warmup_time = int(timesteps * warmup_frac)
    betas[:warmup_time] = np.linspace(beta_start, beta_end, warmup_time, dtype=np.float64)
    return betas


def warmup10_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02):
    """Ho et al. 2020 (DDPM code 'warmup10'): linear over the first 10% of steps, then constant beta_end."""
    return _tensor(_warmup(timesteps, beta_start, beta_end, 0.1))


def warmup50_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02):
    """Ho et al. 2020 (DDPM code 'warmup50'): linear over the first 50% of steps, then constant beta_end."""
    return _tensor(_warmup(timesteps, beta_start, beta_end, 0.5))


def const_betas(timesteps: int, beta_end: float = 0.02):
    """Ho et al. 2020 (DDPM code 'const'): every beta equals beta_end."""
    return _tensor(beta_end * np.ones(timesteps, dtype=np.float64))


def jsd_betas(timesteps: int):
    """Ho et al. 2020 (DDPM code 'jsd'): betas 1/T, 1/(T-1), ..., 1 (alpha-bar reaches exactly 0)."""
    return _tensor(1.0 / np.linspace(timesteps, 1, timesteps, dtype=np.float64))


# -- custom: betas or alpha-bars by hand -------------------------------------------------------------

CUSTOM_HOLDS = ("betas", "alpha_bars")


def custom_betas(timesteps: int, betas=(), alpha_bars=(), file: str = "", file_holds: str = "betas"):
    """A schedule given by hand: betas or alpha-bars inline, or read from a .npy/.txt/.csv/.json file."""
    if file:
        values, holds = read_schedule_file(Path(file).expanduser(), file_holds)
        where = f"file {file!r}"
    elif len(betas):
        values, holds, where = np.asarray(betas, dtype=np.float64), "betas", "betas"
    else:
        values, holds, where = np.asarray(alpha_bars, dtype=np.float64), "alpha_bars", "alpha_bars"
    values = values.reshape(-1)
    if len(values) != timesteps:
        raise ConfigError(f"[schedule] custom: {where} holds {len(values)} {holds} but timesteps = {timesteps}; "
                          f"set [schedule] timesteps = {len(values)} or give {timesteps} values")
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ConfigError(f"[schedule] custom: {where} value [{bad}] = {values[bad]} is not a finite number")
    if holds == "alpha_bars":
        previous = np.concatenate([[1.0], values[:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            values = 1.0 - values / previous  # validated by the host: 0 < beta < 1, alpha-bar decreasing
    return _tensor(values)


def read_schedule_file(path: Path, file_holds: str) -> tuple[np.ndarray, str]:
    """Numbers from .npy, .txt/.csv (one or more per line, '#' comments) or .json (a list, or an object with
    a "betas" or "alpha_bars" list, which then says what the file holds)."""
    if path.is_dir():
        raise ConfigError(f"[schedule] custom: file {str(path)!r} is a folder, not a file; give a .npy, .txt, "
                          ".csv or .json file (relative paths start at the current folder)")
    if not path.is_file():
        raise ConfigError(f"[schedule] custom: file {str(path)!r} does not exist; give an existing "
                          ".npy, .txt, .csv or .json file (relative paths start at the current folder)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        elif suffix in (".txt", ".csv"):
            values = np.loadtxt(path, dtype=np.float64, delimiter="," if suffix == ".csv" else None, ndmin=1)
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                keys = [k for k in CUSTOM_HOLDS if k in data]
                if len(keys) != 1:
                    raise ValueError('a JSON object needs exactly one of the keys "betas" or "alpha_bars"')
                file_holds, data = keys[0], data[keys[0]]
            values = np.asarray(data, dtype=np.float64)
        else:
            raise ValueError(f"unknown file type {suffix!r}; use .npy, .txt, .csv or .json")
        values = np.asarray(values, dtype=np.float64)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"[schedule] custom: cannot read file {str(path)!r}: {exc}") from None
    if values.ndim > 1 and sorted(values.shape)[-2] != 1:
        raise ConfigError(f"[schedule] custom: file {str(path)!r} holds a {values.shape} table; "
                          "it must hold one row or one column of numbers")
    return values.reshape(-1), file_holds


def validate_custom(params: dict) -> None:
    given = [key for key in ("betas", "alpha_bars", "file") if len(params[key])]
    if len(given) != 1:
        raise ValueError("give exactly one of betas = [...], alpha_bars = [...] or file = \"path\" "
                         f"(got {', '.join(given) or 'none'})")
    for key in ("betas", "alpha_bars"):
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in params[key]):
            raise ValueError(f"{key} must be a list of numbers")
    if params["file_holds"] not in CUSTOM_HOLDS:
        raise ValueError(f"file_holds = {params['file_holds']!r}; it must be \"betas\" or \"alpha_bars\"")


# -- parameter checks --------------------------------------------------------------------------------


def _check_beta_range(params: dict) -> None:
    for key in ("beta_start", "beta_end"):
        if key in params and not 0 < params[key] < 1:
            raise ValueError(f"{key} = {params[key]} must be in (0, 1)")


def _check_max_beta(params: dict) -> None:
    if not 0 < params["max_beta"] <= 1:
        raise ValueError(f"max_beta = {params['max_beta']} must be in (0, 1]")


def validate_cosine(params: dict) -> None:
    if params["s"] < 0:
        raise ValueError(f"s = {params['s']} must be >= 0")
    _check_max_beta(params)


def validate_sigmoid(params: dict) -> None:
    if params["tau"] <= 0:
        raise ValueError(f"tau = {params['tau']} must be > 0")
    if not params["start"] < params["end"]:
        raise ValueError(f"start = {params['start']} must be less than end = {params['end']}")
    _check_max_beta(params)


@hookimpl
def register_schedules(register):
    ddpm = "Ho et al. 2020 (DDPM)"
    betas = {"beta_start": 1e-4, "beta_end": 0.02}
    register("linear", linear_betas, params=dict(betas), validate=_check_beta_range, reference=ddpm,
             description="betas linear from 1e-4 to 0.02 (not rescaled by 1000/T)")
    register("scaled-linear", scaled_linear_betas, params={"beta_start": 0.00085, "beta_end": 0.012},
             validate=_check_beta_range, reference="Rombach et al. 2022 (Stable Diffusion)",
             description="sqrt(beta) linear from sqrt(0.00085) to sqrt(0.012)")
    register("quadratic", quadratic_betas, params=dict(betas), validate=_check_beta_range, reference=ddpm,
             description="DDPM 'quad': sqrt(beta) linear from sqrt(1e-4) to sqrt(0.02)")
    register("cosine", cosine_betas, params={"s": 0.008, "max_beta": 0.999}, validate=validate_cosine,
             reference="Nichol & Dhariwal 2021", description="alpha-bar = cos^2 of ((t/T + s)/(1 + s) pi/2)")
    register("sigmoid", sigmoid_betas, params={"start": -3.0, "end": 3.0, "tau": 1.0, "max_beta": 0.999},
             validate=validate_sigmoid, reference="Chen 2023 (On the importance of noise scheduling)",
             description="alpha-bar follows a sigmoid of t")
    register("sigmoid-beta", sigmoid_beta_betas, params=dict(betas), validate=_check_beta_range,
             reference="Xu et al. 2022 (GeoDiff)", description="betas follow sigmoid(linspace(-6, 6, T))")
    register("warmup10", warmup10_betas, params=dict(betas), validate=_check_beta_range, reference=ddpm,
             description="linear warm-up over the first 10% of steps, then beta_end")
    register("warmup50", warmup50_betas, params=dict(betas), validate=_check_beta_range, reference=ddpm,
             description="linear warm-up over the first 50% of steps, then beta_end")
    register("const", const_betas, params={"beta_end": 0.02}, validate=_check_beta_range, reference=ddpm,
             description="every beta equals beta_end")
    register("jsd", jsd_betas, reference=ddpm, description="betas 1/T, 1/(T-1), ..., 1 (alpha-bar ends at 0)")
    register("custom", custom_betas,
             params={"betas": [], "alpha_bars": [], "file": "", "file_holds": "betas"},
             validate=validate_custom, reference="by hand",
             description="betas or alpha-bars listed inline or read from .npy/.txt/.csv/.json")
