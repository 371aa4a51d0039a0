"""Building, checking and describing denoising backbones (the networks that predict noise).

The backbone contract, for plugin authors (see also docs/backbones.md):

- Register a factory in `register_backbones(register)`; users select it with `[backbone] name = "..."`,
  and its other keys are the params you registered (defaults; None means "no type check, I validate").
- The host calls `factory(in_channels=C, out_channels=C_out, image_size=S, **params)` and expects a
  `torch.nn.Module` on the CPU. C_out is C, or 2C when the diffusion objective also learns the variance.
- `forward(x_t, t, y=None)`: x_t float (B, C, S, S); t (B,) timesteps 0..T-1, a LongTensor (a float
  tensor is also allowed, for samplers that use fractional steps); y optional class labels (B,) or None.
  Returns a float tensor (B, C_out, S, S), e.g. the predicted noise.
- No batch-size assumptions; it should work under bf16 autocast, channels_last and torch.compile.

`build_backbone` checks all of that with a dummy forward pass. A factory that raises follows the one error
policy of workbench.components; a wrong return value or forward pass is a `PluginError` naming the backbone
and its plugin.
A wrapper around any module (e.g. diffusers' UNet2DModel) is ten lines:

    class Wrapped(torch.nn.Module):
        def __init__(self, in_channels, out_channels, image_size, width=64):
            super().__init__()
            self.net = UNet2DModel(sample_size=image_size, in_channels=in_channels,
                                   out_channels=out_channels, block_out_channels=(width,) + (2 * width,) * 3)
        def forward(self, x, t, y=None):
            return self.net(x, t).sample

    @hookimpl
    def register_backbones(register):
        register("diffusers-unet", Wrapped, params={"width": 64})

FLOPs are counted, not quoted from papers, so throughput can be reported as MFU: `flops_per_image` is
the forward pass of one image as `torch.utils.flop_counter.FlopCounterMode` counts it (a multiply-add is
2 FLOPs; convolutions, matmuls and attention; norms and activations are not counted). A training step
costs about 3x that per image (forward, plus backward through activations and through weights).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from workbench.components import call_factory, chosen, describe_exception, label
from workbench.errors import PluginError, WorkbenchError

__all__ = ["build_backbone", "count_parameters", "flops_per_image", "describe_backbone",
           "describe_registered_backbones", "DEFAULT_DESCRIBE_INPUT"]

# Input a backbone without its own `presets` is described at (`ddpm-workbench plugins --describe`).
DEFAULT_DESCRIBE_INPUT = {"in_channels": 3, "image_size": 32}


def build_backbone(backbone_section, *, in_channels: int, out_channels: int, image_size: int) -> nn.Module:
    """The backbone a resolved `cfg.backbone` selected (its component and `.params`), built and checked."""
    return build_component(chosen(backbone_section), backbone_section.params, in_channels=in_channels,
                           out_channels=out_channels, image_size=image_size)


def build_component(component, params: Mapping[str, Any], *, in_channels: int, out_channels: int,
                    image_size: int) -> nn.Module:
    """Call a registered backbone's factory and check what it returns (see the module docstring)."""
    who = label(component)
    model = call_factory(component, section="backbone", in_channels=in_channels, out_channels=out_channels,
                         image_size=image_size, **params)
    if not isinstance(model, nn.Module):
        raise PluginError(f"{who}: its factory returned {type(model).__name__}, not a torch.nn.Module")
    check_forward(model, who, in_channels=in_channels, out_channels=out_channels, image_size=image_size)
    return model


def check_forward(model: nn.Module, who: str, *, in_channels: int, out_channels: int, image_size: int) -> None:
    """One no-grad forward of a batch of 2 in eval mode (so BatchNorm statistics stay untouched)."""
    device = model_device(model)
    x = torch.randn(2, in_channels, image_size, image_size, device=device)
    t = torch.tensor([0, 1], device=device)  # valid for any number of timesteps T >= 2
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x, t)
    except Exception as exc:  # noqa: BLE001
        raise PluginError(f"{who}: forward(x, t) on x of shape {tuple(x.shape)} failed: "
                          f"{describe_exception(exc)}") from exc
    finally:
        model.train(was_training)
    expected = (2, out_channels, image_size, image_size)
    if not isinstance(out, torch.Tensor):
        raise PluginError(f"{who}: forward returned {type(out).__name__}, not a tensor of shape {expected}")
    if tuple(out.shape) != expected:
        raise PluginError(f"{who}: forward on x of shape {tuple(x.shape)} returned shape {tuple(out.shape)}; "
                          f"expected {expected} (batch, out_channels, image_size, image_size)")
    if not out.is_floating_point() or not torch.isfinite(out).all():
        raise PluginError(f"{who}: forward returned non-finite or non-float values ({out.dtype})")


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (shared ones once; frozen ones included)."""
    return sum(p.numel() for p in model.parameters())


def flops_per_image(model: nn.Module, in_channels: int, image_size: int) -> int:
    """Forward FLOPs for ONE image (a multiply-add = 2), counted by FlopCounterMode; training ~= 3x.

    Attention runs on SDPA's math backend while counting: FlopCounterMode has formulas for the CUDA fused
    kernels but none for the CPU one, which it would count as zero; the math backend's two matmuls are the
    same FLOPs on every device."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    device = model_device(model)
    x = torch.randn(1, in_channels, image_size, image_size, device=device)
    t = torch.zeros(1, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
            model(x, t)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def describe_backbone(model: nn.Module, in_channels: int, image_size: int) -> dict[str, int]:
    """{"params": ..., "flops_per_image": ...} of a built backbone."""
    return {"params": count_parameters(model), "flops_per_image": flops_per_image(model, in_channels, image_size)}


def describe_registered_backbones(host) -> list[dict[str, Any]]:
    """Parameters and FLOPs per image of every backbone registered in `host` (a PluginHost): each entry of a
    factory's optional `presets` attribute ({label: {"params", "in_channels", "image_size"}}), else the
    registered defaults at DEFAULT_DESCRIBE_INPUT. A backbone that fails to build is listed with its error."""
    rows = []
    for component in host.registries["backbone"]:
        variants = getattr(component.factory, "presets", None) or {
            "": {"params": {}, **DEFAULT_DESCRIBE_INPUT}}
        for label, variant in variants.items():
            params = {**component.params, **variant.get("params", {})}
            channels, size = variant["in_channels"], variant["image_size"]
            row: dict[str, Any] = {"backbone": component.name, "plugin": component.plugin, "variant": label,
                                   "in_channels": channels, "image_size": size}
            try:
                model = build_component(component, params, in_channels=channels, out_channels=channels,
                                        image_size=size)
                row.update(describe_backbone(model, channels, size))
            except WorkbenchError as exc:
                row["error"] = str(exc)
            rows.append(row)
    return rows


def model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
