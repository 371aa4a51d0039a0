"""Configuration: TOML file -> validated, typed `Config`.

The defaults live here, in `SCHEMA`; the repository's `workbench.toml` restates them with comments (a test
keeps the two equal). Four sections select a plugin by `name` and also hold that plugin's own keys:
`[dataset]`, `[schedule]`, `[backbone]` and `[sample]` (a sampler). Host keys are checked here; plugin keys
are checked by the selected plugin's registered parameters (see workbench.plugin_host).

Everything is validated before any work starts, and every problem is a one-line `ConfigError`.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from workbench.errors import ConfigError, did_you_mean
from workbench.plugin_host.registry import Component, type_name

DEFAULT_CONFIG_NAME = "workbench.toml"
SEED_MAX = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer
INT_MAX = 2**63 - 1  # any integer key: what a C long (torch, numpy indices) can hold
STEPS_MAX = 10**9  # optimizer steps, step intervals: years of training at any speed
BATCH_MAX = 65_536  # images per batch: far beyond any device's memory at these image sizes
NAME_MAX_BYTES = 255  # one path component on Linux, macOS and Windows file systems
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
# TOML values that are not strings but were probably meant as one (name = 2024-01-01, name = 123)
SCALARS = (bool, int, float, datetime.date, datetime.time)


@dataclass(frozen=True)
class Key:
    """One host-level config key: its default, what it means, and what values are allowed."""

    default: Any
    help: str
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    also: tuple = ()  # other accepted types, e.g. (str,) with choices=("auto",) beside a bool
    check: Callable[[Any], str] | None = None  # value -> what is wrong with it ("" when nothing)


def K(default, help, **kw) -> Key:  # noqa: N802 - reads like a table below
    return Key(default, help, **kw)


def check_run_name(name: str) -> str:
    """What is wrong with a run name and how to fix it, or "" (empty means a timestamp)."""
    if name == "":
        return ""
    if not name.strip():
        problem = "is blank"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator"
    elif name == ".":
        problem = "is run.dir itself"
    elif ".." in name:
        problem = "contains '..'"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "contains a control character"
    elif not _encodes(name):
        problem = "contains bytes that are not valid UTF-8 (an undecodable file name)"
    elif len(name.encode("utf-8")) > NAME_MAX_BYTES:
        problem = f"is {len(name.encode('utf-8'))} bytes long; file systems allow {NAME_MAX_BYTES}"
    elif sys.platform == "win32" and (name.split(".")[0].upper() in WINDOWS_RESERVED
                                      or name[-1] in ". " or any(c in '<>:"|?*' for c in name)):
        problem = "is not a valid file name on Windows (reserved name, trailing dot or space, or one of <>:\"|?*)"
    else:
        return ""
    return (f"{problem}; a run name is one folder name inside run.dir: any characters except / and \\ "
            "(and control characters), not '.' and without '..', e.g. exp-1; leave it empty for a timestamp")


def _encodes(name: str) -> bool:
    """Whether `name` can be written as UTF-8 (into status.json, config.toml) and as a file name here."""
    try:
        name.encode("utf-8")
        Path(name).__fspath__().encode(sys.getfilesystemencoding())
    except UnicodeError:
        return False
    return True


DEVICE_FORM = re.compile(r"auto|cpu|cuda|cuda:\d+|mps")


def check_device(spec: str) -> str:
    """What is wrong with the form of a device, or "" (whether it is available is checked by training)."""
    if DEVICE_FORM.fullmatch(spec.strip().lower()):
        return ""
    return "is not a device; use auto, cpu, cuda, cuda:N (N = a GPU index, e.g. cuda:0) or mps"


SCHEMA: dict[str, dict[str, Key]] = {
    "run": {
        "name": K("", "run directory name under `dir`; empty: a timestamp", check=check_run_name),
        "dir": K("runs", "folder that holds run directories"),
        "seed": K(0, "random seed for weights, data order, noise and samples", min=0, max=SEED_MAX),
        "device": K("auto", "auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps", check=check_device),
    },
    "dataset": {
        "name": K("fashion-mnist", "dataset plugin (see `ddpm-workbench plugins`)"),
        "pad_to": K(0, "pad smaller images with the background colour to this size; 0 = never", min=0, max=4096),
        "flip": K("auto", "random horizontal flips: true, false, or auto (the dataset's own default)",
                  choices=("auto",), also=(bool,)),
        "limit": K(0, "use only the first N images; 0 = all", min=0, max=INT_MAX),
    },
    "schedule": {
        "name": K("linear", "noise schedule plugin (see `ddpm-workbench schedules`)"),
        "timesteps": K(1000, "number of diffusion steps T", min=2, max=100_000),
        "zero_terminal_snr": K(False, "rescale to zero terminal SNR (Lin et al. 2023)"),
    },
    "backbone": {
        "name": K("unet", "denoising network plugin"),
    },
    "train": {
        "steps": K(3000, "optimizer steps to train for; with train.minutes, the most the run may take", min=1,
                   max=STEPS_MAX),
        "minutes": K(10.0, "train for about this many minutes, the whole run included (start-up, previews, the "
                          "final checkpoint): the steps are set from the measured speed, at most train.steps; "
                          "0 = off", min=0.0, max=1e7),
        "batch_size": K(64, "global batch size (split across torchrun ranks)", min=1, max=BATCH_MAX),
        "grad_accum": K(1, "micro-batches per optimizer step", min=1, max=BATCH_MAX),
        "optimizer": K("adamw", "adam or adamw", choices=("adam", "adamw")),
        "lr": K(1e-3, "peak learning rate", min=0.0, min_exclusive=True),
        "weight_decay": K(0.0, "AdamW weight decay", min=0.0),
        "adam_beta1": K(0.9, "Adam beta1", min=0.0, max=1.0, max_exclusive=True),
        "adam_beta2": K(0.999, "Adam beta2", min=0.0, max=1.0, max_exclusive=True),
        "warmup_steps": K(100, "linear learning-rate warmup steps", min=0, max=STEPS_MAX),
        "lr_schedule": K("cosine", "after warmup: constant or cosine decay", choices=("constant", "cosine")),
        "min_lr_ratio": K(0.1, "cosine decay ends at lr * min_lr_ratio", min=0.0, max=1.0),
        "grad_clip": K(1.0, "clip the global gradient norm to this; 0 = off", min=0.0),
        "label_dropout": K(0.0, "class-conditional backbones: fraction of labels replaced by \"no label\" so "
                           "classifier-free guidance works (0.1 usual); 0 = off", min=0.0, max=1.0),
        "ema_decay": K(0.999, "EMA decay of the weights used for samples; 0 = no EMA", min=0.0, max=1.0),
        "ema_warmup": K(True, "ramp EMA decay as min(decay, (1 + step) / (10 + step))"),
        "prediction": K("v", "what the network predicts: eps, x0 or v", choices=("eps", "x0", "v")),
        "loss_weighting": K("min-snr", "uniform (L_simple) or min-snr (Hang et al. 2023)",
                            choices=("uniform", "min-snr")),
        "min_snr_gamma": K(5.0, "gamma for min-snr weighting", min=0.0, min_exclusive=True),
        "precision": K("auto", "auto (bf16 on GPU and on CPUs with AMX, else fp32), fp32, bf16 or fp16",
                       choices=("auto", "fp32", "bf16", "fp16")),
        "channels_last": K("auto", "channels_last memory format: true, false or auto (on GPU)",
                           choices=("auto",), also=(bool,)),
        "compile": K(False, "torch.compile the backbone"),
        "log_every": K(25, "steps between metric lines (the only host-device syncs)", min=1, max=STEPS_MAX),
        "sample_every": K(250, "steps between sample grids; 0 = only at the end", min=0, max=STEPS_MAX),
        "checkpoint_every": K(500, "steps between checkpoints; 0 = only at the end", min=0, max=STEPS_MAX),
        "keep_checkpoints": K(3, "how many step checkpoints to keep besides latest", min=1, max=10_000),
        "tensorboard": K(False, "also log to TensorBoard (needs the tensorboard package)"),
        "eval_every": K(-1, "steps between sample-quality evaluations (docs/evaluation.md); 0 = off, "
                            "-1 = auto (off on a CPU, 10 per run on a GPU)", min=-1, max=10**9),
        "eval_samples": K(0, "images sampled per evaluation (dpm-solver++, 20 steps, EMA weights); "
                             "0 = auto (10,000 on a GPU, 1,000 on a CPU)", min=0, max=1_000_000),
        "eval_metric": K("fd", "what an evaluation ranks by: fd (Frechet distance; FID with inception) or kid",
                         choices=("fd", "kid")),
        "eval_extractor": K("auto", "feature extractor: auto (fashion-classifier for grayscale up to 32 px, "
                                    "else inception), or any installed (`ddpm-workbench plugins`)"),
        "keep_best": K(True, "keep checkpoints/best.pt: the weights of the best evaluation so far"),
    },
    "sample": {
        "name": K("dpm-solver++", "sampler plugin used for previews and `ddpm-workbench sample`"),
        "steps": K(20, "sampling steps (at most schedule.timesteps)", min=1, max=100_000),
        "n": K(16, "images in each sample grid", min=1, max=1024),
        "clip_x0": K(True, "clip the predicted x0 to [-1, 1]"),
        "dynamic_threshold": K(0.0, "dynamic thresholding percentile (Saharia et al. 2022); 0 = off",
                               min=0.0, max=1.0),
        "grid_scale": K(4, "preview grid PNGs are enlarged this many times (nearest neighbour) to be viewable "
                           "outside the workbench; 1 = native size", min=1, max=16),
        "guidance": K(1.0, "classifier-free guidance scale for class-conditional models: 1 = plain conditional, "
                      "0 = unconditional, > 1 = stronger class", min=0.0),
    },
    "ui": {
        "image_renderer": K("auto", "auto, halfblock, sixel or kitty", choices=("auto", "halfblock", "sixel", "kitty")),
        "refresh_hz": K(4.0, "how often the run view redraws", min=0.5, max=30.0),
        "loss_smoothing": K(0.95, "EMA factor of the smoothed loss curve", min=0.0, max=0.999),
    },
}

# Config sections that select a plugin by `name`, and the plugin kind they select.
PLUGIN_SECTIONS = {"dataset": "dataset", "schedule": "schedule", "backbone": "backbone", "sample": "sampler"}


class Section(Mapping):
    """One resolved section: attribute and item access to every key. A plugin section also carries the
    component its `name` selected (`.component`, looked up once by `resolve`) and that plugin's own validated
    keys (`.params`); the build functions take the section (see workbench.components)."""

    def __init__(self, name: str, values: dict[str, Any], params: dict[str, Any] | None = None,
                 component: Component | None = None):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "params", dict(params or {}))
        object.__setattr__(self, "component", component)

    def __getattr__(self, key: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if key in values:
            return values[key]
        raise AttributeError(f"config section [{self._name}] has no key {key!r}")

    def __setattr__(self, key, value):
        raise AttributeError("Config is read-only; use Config.with_overrides()")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Section({self._name!r}, {self._values!r})"


class Config:
    """A validated configuration. `cfg.train.lr`, `cfg.schedule.params`, `cfg.as_dict()`."""

    def __init__(self, data: dict[str, dict[str, Any]], params: dict[str, dict[str, Any]], source: str,
                 components: Mapping[str, Component] | None = None):
        self._data = data
        self.source = source  # where it came from, for messages: a path or "built-in defaults"
        self.notes: list[str] = []  # what loading changed beyond what was asked (see apply_overrides)
        for section, values in data.items():
            object.__setattr__(self, section, Section(section, values, params.get(section),
                                                      (components or {}).get(section)))

    run: Section
    dataset: Section
    schedule: Section
    backbone: Section
    train: Section
    sample: Section
    ui: Section

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {section: dict(values) for section, values in self._data.items()}

    def to_toml(self) -> str:
        return dump_toml(self.as_dict())

    def with_overrides(self, overrides: Iterable[str], host=None) -> "Config":
        raw = self.as_dict()
        notes = apply_overrides(raw, overrides)
        config = resolve(raw, source=self.source, host=host)
        config.notes = notes
        return config

    def __eq__(self, other) -> bool:
        return isinstance(other, Config) and self.as_dict() == other.as_dict()


# -- loading ---------------------------------------------------------------------------------------


def load_config(path: str | Path | None = None, overrides: Iterable[str] = (), *, host=None,
                search_cwd: bool = True) -> Config:
    """Read `path` (or ./workbench.toml when it exists and `search_cwd`, or the built-in defaults), apply
    `--set section.key=value` overrides, and validate everything against the schema and the plugins."""
    if path is not None and not str(path).strip():
        raise ConfigError("--config '': the config file path is empty; give a TOML file, e.g. --config "
                          "workbench.toml, or leave --config out to use ./workbench.toml or the built-in defaults")
    if path is None and search_cwd and Path(DEFAULT_CONFIG_NAME).is_file():
        path = Path(DEFAULT_CONFIG_NAME)
    if path is None:
        raw: dict[str, Any] = {}
        source = "built-in defaults"
    else:
        raw = without_budget_if_steps_given(read_toml(Path(path)))
        source = str(path)
    notes = apply_overrides(raw, overrides)
    config = resolve(raw, source=source, host=host)
    config.notes = notes
    return config


CONFIG_MAX_BYTES = 1 << 20  # a config file is a few KiB; anything near this is not one
CONFIG_MAX_DEPTH = 32  # nested arrays / inline tables; tomllib recurses once per level


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML config file; every problem is one line. The file is checked with stat() before it is
    opened (opening a FIFO would wait for a writer forever; a device could be read forever), its size is
    capped, a UTF-8 byte-order mark is accepted, and deep nesting is refused before the recursive parser sees it."""
    import stat

    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist; pass an existing file to --config "
                          "or leave it out to use the built-in defaults") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"config file {str(path)!r} is a directory, not a TOML file")
    if stat.S_ISCHR(info.st_mode) and os.path.exists(os.devnull) and os.path.samefile(path, os.devnull):
        return {}  # --config /dev/null: the usual way to say "no config file"
    if not stat.S_ISREG(info.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a regular file")
        raise ConfigError(f"config file {str(path)!r} is {kind}, not a TOML file; pass a regular file to --config")
    if info.st_size > CONFIG_MAX_BYTES:
        raise ConfigError(f"config file {str(path)!r} is {info.st_size:,} bytes; a config file is at most "
                          f"{CONFIG_MAX_BYTES:,} bytes (is it the right file?)")
    try:
        with open(path, "rb") as f:
            data = f.read(CONFIG_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark, as some Windows editors write: harmless
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"config file {str(path)!r} is UTF-16 (it starts with a UTF-16 byte-order mark); "
                          "save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return parse_toml(text, f"{path}")


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """tomllib.loads with its recursion bounded and every failure as one ConfigError."""
    depth = nesting_depth(text)
    if depth > CONFIG_MAX_DEPTH:
        raise ConfigError(f"{where}: arrays or inline tables nested {depth} deep; at most {CONFIG_MAX_DEPTH} "
                          "levels are accepted")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more digits than Python converts
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{where}: cannot read this TOML: {first}") from None


def nesting_depth(text: str) -> int:
    """The deepest nesting of [ and { outside strings and comments (a cheap upper bound of the parser's
    recursion; table headers like [a] or [[a]] add at most 2)."""
    depth = deepest = i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "#":
            i = text.find("\n", i)
            if i < 0:
                break
        elif c in "\"'":
            quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else c
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                i += 2 if (text[i] == "\\" and quote[0] == '"') else 1
            i += len(quote) - 1
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(depth - 1, 0)
        i += 1
    return deepest


def parse_value(text: str) -> Any:
    """A `--set` value: any TOML value (1e-4, true, [1, 2], "x"), else the bare text as a string."""
    if nesting_depth(text) > CONFIG_MAX_DEPTH:
        raise ConfigError(f"--set value {text[:40]!r}...: arrays or inline tables nested more than "
                          f"{CONFIG_MAX_DEPTH} deep")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError; so is a 5000-digit integer
        return text


@dataclass(frozen=True)
class SetValue:
    """A `--set` value before validation: what TOML made of it, and the text as typed.

    A key that expects a string takes the text as typed when TOML made a number, boolean or date of it
    (`--set run.name=2024-01-01` names the run "2024-01-01"); every other key takes the parsed value."""

    value: Any
    text: str

    def for_key(self, default: Any, also: tuple = ()) -> Any:
        value = self.value
        if (isinstance(default, str) and not isinstance(value, str) and isinstance(value, SCALARS)
                and not (also and isinstance(value, also))):
            return self.text
        return value


def unwrap(value: Any, default: Any = None, also: tuple = ()) -> Any:
    """A raw config value with any `--set` wrapper removed (see `SetValue`)."""
    return value.for_key(default, also) if isinstance(value, SetValue) else value


def shown(value: Any) -> str:
    """A value as a message shows it: TOML's form for dates and times, else repr."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:120]}... ({len(text):,} characters)"


def kind_of(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    return type_name(value)


def toml_text(value: Any) -> str:
    """A scalar as it was probably written in TOML (2024-01-01, 123, true)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def not_a_string(section: str, key: str, value: Any, expected: str, what: str) -> ConfigError:
    """The error for a non-string where a string is expected, with the fix: quote it."""
    message = f"[{section}] {key} = {shown(value)} is {kind_of(value)}; it must be {expected}"
    if isinstance(value, SCALARS):
        message += f": quote it, {key} = {toml_value(toml_text(value))}"
    return ConfigError(f"{message} ({what})")


def without_budget_if_steps_given(raw: dict[str, Any]) -> dict[str, Any]:
    """A config that gives [train] steps but no `minutes` (a file of yours, or a run's config.toml written
    before the key existed) means that many steps: its time budget is off, not the built-in 10 minutes."""
    train = raw.get("train")
    if isinstance(train, dict) and "steps" in train and "minutes" not in train:
        train["minutes"] = 0.0
    return raw


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> list[str]:
    """Apply `--set section.key=value` items to `raw`. A --set that picks another plugin for a section
    (`--set backbone.name=diffusers-unet` over a file that sets the unet's `preset`) drops the keys the file
    gave the plugin it replaces: they belong to that plugin, not to the new one. Returns one note per
    section whose keys were dropped, for the caller to show."""
    parsed = []
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name or "." in name:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set train.lr=1e-4")
        parsed.append((item, section, name, SetValue(parse_value(value.strip()), value.strip())))
    notes = []
    for item, section, name, value in parsed:
        table = raw.get(section)
        if name != "name" or section not in PLUGIN_SECTIONS or not isinstance(table, dict):
            continue
        previous = unwrap(table.get("name"), "")
        chosen = unwrap(value, "")
        if "name" not in table or previous == chosen:
            continue
        dropped = [k for k in table if k not in SCHEMA[section]]
        if dropped:
            raw[section] = {k: v for k, v in table.items() if k in SCHEMA[section]}
            notes.append(f"[{section}] name = {chosen!r} replaces {previous!r}: its keys {', '.join(dropped)} "
                         "were dropped (set the new plugin's own keys with --set)")
    for item, section, name, value in parsed:
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"--set {item!r}: {section!r} is not a section")
        table[name] = value
    given = {(section, name) for _, section, name, _ in parsed}
    if ("train", "steps") in given and ("train", "minutes") not in given:
        # `--set train.steps=N` asks for N steps: the time budget of the file or the defaults would cut the
        # run short without being asked to.
        # (No note: the start line says "training for N steps".)
        raw["train"]["minutes"] = 0.0
    return notes


def check_host_value(section: str, key: str, value: Any, spec: Key) -> Any:
    default = spec.default
    if spec.also and isinstance(value, spec.also) and not (isinstance(value, bool) and bool not in spec.also):
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        allowed = type_name(default)
        if spec.also:
            allowed += " or " + " or ".join(type_name(t()) for t in spec.also)
        if isinstance(default, str):
            raise not_a_string(section, key, value, allowed, spec.help)
        raise ConfigError(f"[{section}] {key} = {shown(value)} is {kind_of(value)}; it must be {allowed} "
                          f"({spec.help})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"[{section}] {key} = {shown(value)} must be a finite number ({spec.help})")
    if spec.choices and isinstance(value, str) and value not in spec.choices:
        options = ", ".join(repr(c) for c in spec.choices)
        if spec.also:
            options += ", " + ", ".join(repr(t()) if t is not bool else "true, false" for t in spec.also)
        raise ConfigError(f"[{section}] {key} = {shown(value)} is not allowed{did_you_mean(value, spec.choices)}; "
                          f"choose one of {options}")
    if spec.min is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < spec.min or (spec.min_exclusive and value == spec.min):
            bound = f"> {spec.min}" if spec.min_exclusive else f">= {spec.min}"
            raise ConfigError(f"[{section}] {key} = {shown(value)} is out of range; it must be {bound} ({spec.help})")
    if spec.max is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        if value > spec.max or (spec.max_exclusive and value == spec.max):
            bound = f"< {spec.max}" if spec.max_exclusive else f"<= {spec.max}"
            raise ConfigError(f"[{section}] {key} = {shown(value)} is out of range; it must be {bound} ({spec.help})")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_MAX:
        raise ConfigError(f"[{section}] {key} = {shown(value)} is out of range; integers must fit in 64 bits "
                          f"(|value| <= 2**63-1) ({spec.help})")
    problem = spec.check(value) if spec.check is not None and isinstance(value, str) else ""
    if problem:
        raise ConfigError(f"[{section}] {key} = {shown(value)} {problem}")
    return value


def resolve(raw: Mapping[str, Any], *, source: str = "built-in defaults", host=None) -> Config:
    """Validate a raw nested dict (from TOML plus overrides) into a `Config`.

    Each plugin section's component is looked up in `host` here, once, and kept on the section with its
    validated parameters (see workbench.components). `host` None means the process-wide plugin host: this
    is the one place that falls back to it."""
    for section, table in raw.items():
        if section not in SCHEMA:
            raise ConfigError(f"unknown config section [{section}]{did_you_mean(section, SCHEMA)}; "
                              f"sections are: {', '.join(SCHEMA)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{section!r} must be a section ([{section}]), not {type_name(table)}")
    if host is None:
        from workbench.plugin_host import get_host

        host = get_host()

    data: dict[str, dict[str, Any]] = {}
    params: dict[str, dict[str, Any]] = {}
    components: dict[str, Component] = {}
    for section, keys in SCHEMA.items():
        table = dict(raw.get(section, {}))
        values = {}
        for key, spec in keys.items():
            if key in table:
                values[key] = check_host_value(section, key, unwrap(table.pop(key), spec.default, spec.also), spec)
            else:
                values[key] = spec.default
        kind = PLUGIN_SECTIONS.get(section)
        if kind is None:
            table = {key: unwrap(value) for key, value in table.items()}
            if table:
                key = next(iter(table))
                raise ConfigError(f"[{section}] unknown key {key!r}{did_you_mean(key, keys)}; "
                                  f"keys are: {', '.join(keys)}")
        else:
            component = components[section] = host.get(kind, values["name"], section=section)
            table = {key: unwrap(value, component.params.get(key)) for key, value in table.items()}
            for key, value in table.items():
                default = component.params.get(key)
                if isinstance(default, str) and isinstance(value, SCALARS):
                    raise not_a_string(section, key, value, "a string",
                                       f"{kind} {component.name!r}, default {default!r}")
            unknown = [k for k in table if k not in component.params]
            if unknown:
                key = unknown[0]
                everything = list(keys) + list(component.params)
                raise ConfigError(f"[{section}] unknown key {key!r}{did_you_mean(key, everything)}; "
                                  f"keys are: {', '.join(everything)}")
            params[section] = component.resolve_params(table, section=section)
            values.update(params[section])
        data[section] = values
    cross_checks(data, given=raw)
    return Config(data, params, source, components)


def cross_checks(data: dict[str, dict[str, Any]], given: Mapping[str, Any]) -> None:
    """Rules that involve more than one key. `given` is what the user wrote (file and --set)."""
    if data["sample"]["steps"] > data["schedule"]["timesteps"] and "steps" not in given.get("sample", {}):
        # The default number of sampling steps follows a shorter schedule instead of refusing it.
        data["sample"]["steps"] = data["schedule"]["timesteps"]
    if data["sample"]["steps"] > data["schedule"]["timesteps"]:
        raise ConfigError(f"[sample] steps = {data['sample']['steps']} is more than [schedule] timesteps = "
                          f"{data['schedule']['timesteps']}; lower sample.steps")
    if data["train"]["batch_size"] % data["train"]["grad_accum"]:
        raise ConfigError(f"[train] batch_size = {data['train']['batch_size']} is not divisible by "
                          f"grad_accum = {data['train']['grad_accum']}")


# -- writing ---------------------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dump_toml(data: Mapping[str, Mapping[str, Any]]) -> str:
    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None)
        lines.append("")
    return "\n".join(lines)
