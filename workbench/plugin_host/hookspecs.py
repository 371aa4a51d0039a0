"""The hooks a ddpm-workbench plugin can implement.

This module is the API reference for plugin authors. A plugin is a module (or object) with functions
decorated by `hookimpl` and named exactly like the specs below; each receives a `register` callback and
calls it once per component it provides:

    from workbench.plugin_host import hookimpl

    @hookimpl
    def register_schedules(register):
        register("my-schedule", my_betas, params={"power": 2.0},
                 description="betas growing as t**power", reference="Me et al. 2026")

`register(name, factory, *, params=None, description="", reference="", validate=None)`:
- `name`: what users write in the config (`[schedule] name = "my-schedule"`); lower-case, `-` separated.
- `factory`: a callable building the component (its signature per kind is given on each hook below).
- `params`: the component's own config keys with their defaults. They come from the same config table
  (`[schedule] power = 3.0`); the host refuses unknown keys (with a did-you-mean) and values whose type
  differs from the default's, then passes the rest to `factory` as keyword arguments.
- `validate`: optional `validate(params: dict) -> None` that raises `ValueError("what is wrong")` for
  values the plugin cannot use; the host names the plugin and key in the message shown to the user.

When a factory raises (the same for every kind, see workbench.components): a `workbench.errors`
`WorkbenchError` (e.g. `ConfigError`, `DatasetError`) reaches the user unchanged, so make it one line that
says what to fix; a `ValueError` is shown as "[section] <kind> '<name>' (plugin <yours>) refused its
parameters: <message>"; anything else is reported as your plugin failing to build.

Third-party plugins are ordinary Python packages that declare an entry point in the group
`ddpm_workbench` (see examples/ddpm-workbench-example-plugin). The host validates what every factory
returns and names the plugin in every error.
"""

from __future__ import annotations

import pluggy

PROJECT = "ddpm_workbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_schedules(register):
    """Register noise schedules: `factory(timesteps: int, **params) -> betas`, a 1-D float64 tensor of
    length `timesteps` with 0 < beta < 1 (alpha-bar strictly decreasing)."""


@hookspec
def register_datasets(register):
    """Register datasets: `factory(**params) -> workbench.data.ImageSource` (images as uint8, with
    their channel count and size, and labels when the dataset has them)."""


@hookspec
def register_backbones(register):
    """Register denoising networks: `factory(in_channels: int, out_channels: int, image_size: int,
    **params) -> torch.nn.Module` whose `forward(x, t, y=None)` maps x of shape (B, in_channels, H, W)
    and integer timesteps t of shape (B,) to a tensor of shape (B, out_channels, H, W)."""


@hookspec
def register_samplers(register):
    """Register samplers: `factory(**params) -> workbench.diffusion.Sampler` (see that protocol).

    A sampler with the class attribute `calls_denoise = True` gets `set_timesteps(schedule, steps, device)`
    with the public NoiseSchedule and `step(index, x, denoise, generator)`, calling `denoise(x, t) -> pred_x0`
    as often as it needs (Heun: twice per step). One without it is run through the loop's adapter for the
    earlier protocol: `set_timesteps(diffusion, steps, device)`, `step(index, x_t, pred_x0, generator)`."""


@hookspec
def register_feature_extractors(register):
    """Register feature extractors for evaluation: `factory(**params) -> extractor` with `name`, `version`,
    `dim`, `frechet_label`, `kernel_label`, `refuse(channels, size)`, `to(device)` and `__call__(uint8
    images (B, C, H, W)) -> float features (B, dim)` (see workbench.evaluation.extractors)."""
