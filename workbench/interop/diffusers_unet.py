"""Our U-Net <-> diffusers' `UNet2DModel`: the config mapping and the explicit key map.

Both networks are the DDPM U-Net (Ho et al. 2020), block for block; they differ in names and in how
attention stores its projections (ours: one 1x1 conv `qkv` of 3C outputs, q then k then v; diffusers: three
linears `to_q`, `to_k`, `to_v`, named `query`, `key`, `value` in files from diffusers before 0.14). What
`UNet2DModel` can configure beyond the U-Net's own options (Fourier or learned time embeddings, other
activations, ResNet up/downsampling, ...) has no counterpart here and is refused with one line naming the
field.

    ours                                diffusers UNet2DModel
    time_mlp.0 / time_mlp.2             time_embedding.linear_1 / linear_2
    label_emb                           class_embedding (num_class_embeds = num_classes + 1)
    conv_in                             conv_in
    down.I.blocks.J                     down_blocks.I.resnets.J
    down.I.attentions.J                 down_blocks.I.attentions.J
    downsamples.I.conv                  down_blocks.I.downsamplers.0.conv
    mid_block1 / mid_attention / mid_block2    mid_block.resnets.0 / attentions.0 / resnets.1
    up.I.blocks.J / up.I.attentions.J   up_blocks.I.resnets.J / attentions.J (I = 0 is the lowest resolution)
    upsamples.I.conv                    up_blocks.I.upsamplers.0.conv
    norm_out / conv_out                 conv_norm_out / conv_out
  inside a residual block: emb_proj -> time_emb_proj, shortcut -> conv_shortcut (the rest keep their names)
  inside an attention block: norm -> group_norm, qkv -> to_q + to_k + to_v, proj -> to_out.0
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from workbench.errors import InteropError

# UNet2DModel's constructor defaults (diffusers 0.42): a config.json leaves out what it does not change, and
# files written by old versions lack fields added since.
UNET2D_DEFAULTS: dict[str, Any] = {
    "sample_size": None, "in_channels": 3, "out_channels": 3, "center_input_sample": False,
    "time_embedding_type": "positional", "time_embedding_dim": None, "freq_shift": 0, "flip_sin_to_cos": True,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2D",
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [224, 448, 672, 896], "layers_per_block": 2, "mid_block_scale_factor": 1,
    "downsample_padding": 1, "downsample_type": "conv", "upsample_type": "conv", "dropout": 0.0,
    "act_fn": "silu", "attention_head_dim": 8, "norm_num_groups": 32, "attn_norm_num_groups": None,
    "norm_eps": 1e-5, "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None,
    "num_class_embeds": None, "num_train_timesteps": None,
}

# Fields our U-Net has exactly one value for: field -> (that value, what it means here).
FIXED: dict[str, tuple[Any, str]] = {
    "center_input_sample": (False, "inputs are already in [-1, 1]"),
    "time_embedding_type": ("positional", "sinusoidal timestep embedding"),
    "act_fn": ("silu", "SiLU activations"),
    "mid_block_type": ("UNetMidBlock2D", "residual, attention, residual bottleneck"),
    "mid_block_scale_factor": (1, "unscaled residual sums"),
    "downsample_type": ("conv", "strided-conv downsampling"),
    "upsample_type": ("conv", "nearest + conv upsampling"),
    "class_embed_type": (None, "a label embedding table (num_class_embeds)"),
}
DOWN_BLOCKS = ("DownBlock2D", "AttnDownBlock2D")
UP_BLOCKS = ("UpBlock2D", "AttnUpBlock2D")
PADDINGS = {0: "tf-same", 1: "symmetric"}  # UNet2DModel downsample_padding -> our downsample_padding


def refuse(field: str, value: Any, why: str) -> InteropError:
    return InteropError(f"UNet2DModel config {field} = {value!r} cannot be mapped to the unet backbone: {why}")


def unet_params_from_diffusers(config: Mapping[str, Any]) -> tuple[dict[str, Any], int, int]:
    """Our `[backbone]` unet keys, the image size and the channel count for a UNet2DModel config.json.

    The keys name every architecture field (no preset default is relied on), so the imported run keeps
    meaning the same network whatever the presets become. Raises InteropError naming the first field that
    has no counterpart."""
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise InteropError(f"config _class_name = {config['_class_name']!r}: only UNet2DModel (the pixel-space "
                           "DDPM U-Net) can be imported")
    c = {**UNET2D_DEFAULTS, **{k: v for k, v in config.items() if not k.startswith("_")}}
    for field, (value, meaning) in FIXED.items():
        if c[field] != value:
            raise refuse(field, c[field], f"this U-Net has {field} = {value!r} only ({meaning})")
    if c["freq_shift"] not in (0, 1) or isinstance(c["freq_shift"], bool):
        raise refuse("freq_shift", c["freq_shift"], "use 0 or 1 (frequencies 10000^(-i / (dim/2 - freq_shift)))")
    eps = c["norm_eps"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise refuse("norm_eps", eps, "a GroupNorm epsilon in (0, 1) is needed")
    channels = list(c["block_out_channels"])
    base = int(channels[0])
    if any(ch % base for ch in channels):
        raise refuse("block_out_channels", channels, f"every width must be a multiple of the first ({base})")
    if c["time_embedding_dim"] not in (None, 4 * base):
        raise refuse("time_embedding_dim", c["time_embedding_dim"], f"this U-Net's is 4 x {base} = {4 * base}")
    down, up = list(c["down_block_types"]), list(c["up_block_types"])
    for field, blocks, allowed in (("down_block_types", down, DOWN_BLOCKS), ("up_block_types", up, UP_BLOCKS)):
        for block in blocks:
            if block not in allowed:
                raise refuse(field, blocks, f"{block} has no counterpart (blocks: {', '.join(allowed)})")
    if len(down) != len(channels) or len(up) != len(channels):
        raise refuse("down_block_types", down, "one down and one up block per block_out_channels entry")
    attention_levels = tuple(i for i, b in enumerate(down) if b == "AttnDownBlock2D")
    up_levels = tuple(sorted(len(up) - 1 - i for i, b in enumerate(up) if b == "AttnUpBlock2D"))
    if attention_levels != up_levels:
        raise refuse("up_block_types", up, f"attention must sit at the same resolutions going up as going down "
                     f"({down})")
    shift = c["resnet_time_scale_shift"]
    if shift not in ("default", "scale_shift"):
        raise refuse("resnet_time_scale_shift", shift, "use default (added embedding) or scale_shift")
    groups = c["norm_num_groups"]
    if not isinstance(groups, int):
        raise refuse("norm_num_groups", groups, "a GroupNorm group count is needed")
    mid_attention = bool(c["add_attention"])
    attn_groups = c["attn_norm_num_groups"]
    if mid_attention and attn_groups is None and shift != "default":
        raise refuse("attn_norm_num_groups", None, "with scale_shift its bottleneck attention has no GroupNorm; "
                     "this U-Net's always has one")
    if mid_attention and attn_groups is not None and attn_groups != groups:
        raise refuse("attn_norm_num_groups", attn_groups, f"attention must normalise like the rest "
                     f"(norm_num_groups = {groups})")
    padding = c["downsample_padding"]
    if padding not in PADDINGS:
        raise refuse("downsample_padding", padding, "use 0 (TensorFlow 'SAME', the original DDPM) or 1")
    head_dim = c["attention_head_dim"]
    attended = [channels[i] for i in attention_levels] + ([channels[-1]] if mid_attention else [])
    heads: dict[str, int] = {"num_heads": 1}
    if head_dim is not None and any(ch != head_dim for ch in attended):
        if not isinstance(head_dim, int) or any(ch % head_dim for ch in attended):
            raise refuse("attention_head_dim", head_dim, f"it must divide every attended width ({attended})")
        heads = {"head_channels": head_dim}
    in_channels, out_channels = int(c["in_channels"]), int(c["out_channels"])
    if out_channels != in_channels:
        raise refuse("out_channels", out_channels, f"this U-Net predicts one value per input channel "
                     f"({in_channels}); learned variances are not supported")
    size = c["sample_size"]
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise refuse("sample_size", size, "only square images are supported")
        size = size[0]
    if not isinstance(size, int) or size < 1:
        raise refuse("sample_size", size, "the image size must be given (an integer)")
    if size % 2 ** (len(channels) - 1):
        raise refuse("sample_size", size, f"it must halve evenly {len(channels) - 1} times, as UNet2DModel's "
                     "upsampling doubles sizes")
    classes = c["num_class_embeds"]
    if classes is not None and (not isinstance(classes, int) or classes < 2):
        raise refuse("num_class_embeds", classes, "use None or at least 2 (the last row is the 'no label' class)")
    params = {
        "base_channels": base,
        "channel_mult": [ch // base for ch in channels],
        "num_res_blocks": int(c["layers_per_block"]),
        "attention_resolutions": [size // 2**i for i in attention_levels],
        "mid_attention": mid_attention,
        **heads,
        "dropout": float(c["dropout"]),
        "groups": groups,
        "scale_shift": shift == "scale_shift",
        "resample": "conv",
        "downsample_padding": PADDINGS[padding],
        "time_embedding": "cos-sin" if c["flip_sin_to_cos"] else "sin-cos",
        "freq_shift": int(c["freq_shift"]),
        "norm_eps": float(eps),
        "num_classes": classes - 1 if classes else 0,
    }
    return params, size, in_channels


def diffusers_config_for(unet_config, channels: int, image_size: int) -> dict[str, Any]:
    """The UNet2DModel config.json of our U-Net (a `UNetConfig`); InteropError naming the field that
    UNet2DModel cannot express."""
    cfg = unet_config
    levels = len(cfg.channel_mult)
    if cfg.resample != "conv":
        raise InteropError(f"[backbone] resample = {cfg.resample!r} cannot be exported: UNet2DModel resamples "
                           "with convolutions only (resample = \"conv\")")
    if cfg.channel_mult[0] != 1:
        raise InteropError(f"[backbone] channel_mult = {list(cfg.channel_mult)} cannot be exported: UNet2DModel's "
                           "first level is as wide as its input convolution (channel_mult must start with 1)")
    if image_size % 2 ** (levels - 1):
        raise InteropError(f"image size {image_size} cannot be exported: UNet2DModel doubles sizes going up, "
                           f"so the size must halve evenly {levels - 1} times (ours rounds up)")
    widths = cfg.level_channels()
    attended = [widths[i] for i in cfg.attention_levels] + ([widths[-1]] if cfg.mid_attention else [])
    head_dims = {ch // cfg.heads_for(ch) for ch in attended}
    if cfg.head_channels == 0 and cfg.num_heads == 1:
        head_dim = None  # one head as wide as each layer
    elif len(head_dims) == 1:
        head_dim = head_dims.pop()
    else:
        raise InteropError(f"[backbone] num_heads = {cfg.num_heads} cannot be exported: it gives heads of "
                           f"{sorted(head_dims)} channels, and UNet2DModel has one attention_head_dim for all")
    return {
        "_class_name": "UNet2DModel",
        "sample_size": image_size,
        "in_channels": channels,
        "out_channels": channels,
        **{field: value for field, (value, _) in FIXED.items()},
        "time_embedding_dim": None,
        "down_block_types": ["AttnDownBlock2D" if i in cfg.attention_levels else "DownBlock2D"
                             for i in range(levels)],
        "up_block_types": ["AttnUpBlock2D" if i in cfg.attention_levels else "UpBlock2D"
                           for i in reversed(range(levels))],
        "block_out_channels": widths,
        "layers_per_block": cfg.num_res_blocks,
        "downsample_padding": {v: k for k, v in PADDINGS.items()}[cfg.downsample_padding],
        "flip_sin_to_cos": cfg.time_embedding == "cos-sin",
        "freq_shift": cfg.freq_shift,
        "norm_eps": cfg.norm_eps,
        "dropout": cfg.dropout,
        "attention_head_dim": head_dim,
        "norm_num_groups": cfg.groups,
        "attn_norm_num_groups": cfg.groups,
        "resnet_time_scale_shift": "scale_shift" if cfg.scale_shift else "default",
        "add_attention": cfg.mid_attention,
        "num_class_embeds": cfg.num_classes + 1 if cfg.num_classes > 0 else None,
        "num_train_timesteps": None,
    }


# -- the key map --------------------------------------------------------------------------------------

# Module prefixes, ours -> diffusers, tried in order (\1, \2: block and layer indices, equal on both sides).
PREFIXES: tuple[tuple[str, str], ...] = (
    (r"time_mlp\.0\.", "time_embedding.linear_1."),
    (r"time_mlp\.2\.", "time_embedding.linear_2."),
    (r"label_emb\.", "class_embedding."),
    (r"conv_in\.", "conv_in."),
    (r"down\.(\d+)\.blocks\.(\d+)\.", r"down_blocks.\1.resnets.\2."),
    (r"down\.(\d+)\.attentions\.(\d+)\.", r"down_blocks.\1.attentions.\2."),
    (r"downsamples\.(\d+)\.conv\.", r"down_blocks.\1.downsamplers.0.conv."),
    (r"mid_block1\.", "mid_block.resnets.0."),
    (r"mid_attention\.", "mid_block.attentions.0."),
    (r"mid_block2\.", "mid_block.resnets.1."),
    (r"up\.(\d+)\.blocks\.(\d+)\.", r"up_blocks.\1.resnets.\2."),
    (r"up\.(\d+)\.attentions\.(\d+)\.", r"up_blocks.\1.attentions.\2."),
    (r"upsamples\.(\d+)\.conv\.", r"up_blocks.\1.upsamplers.0.conv."),
    (r"norm_out\.", "conv_norm_out."),
    (r"conv_out\.", "conv_out."),
)
RESNET_PARTS = {"emb_proj.": "time_emb_proj.", "shortcut.": "conv_shortcut."}  # others keep their names
ATTENTION_PARTS = {"norm.": "group_norm.", "proj.": "to_out.0."}  # "qkv." splits into to_q, to_k, to_v
QKV = ("to_q", "to_k", "to_v")
# Attention names in files written by diffusers before 0.14 (google/ddpm-cifar10-32's), -> today's.
OLD_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
OLD_NAME = re.compile(r"(\.attentions\.\d+\.)(query|key|value|proj_attn)\.")


def diffusers_names(key: str) -> list[str]:
    """The diffusers key(s) holding our parameter `key` (three for an attention block's qkv)."""
    for pattern, replacement in PREFIXES:
        match = re.match(pattern, key)
        if match is None:
            continue
        prefix, rest = match.expand(replacement), key[match.end():]
        if ".attentions." in prefix:
            if rest.startswith("qkv."):
                return [f"{prefix}{name}.{rest[4:]}" for name in QKV]
            rest = next((new + rest[len(old):] for old, new in ATTENTION_PARTS.items() if rest.startswith(old)),
                        rest)
        elif ".resnets." in prefix:
            rest = next((new + rest[len(old):] for old, new in RESNET_PARTS.items() if rest.startswith(old)), rest)
        return [prefix + rest]
    raise KeyError(f"no diffusers name for U-Net parameter {key!r}")


def to_diffusers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our U-Net state dict as UNet2DModel's (attention projections as 2-D linear weights)."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        names = diffusers_names(key)
        tensor = tensor.detach()
        if ".attentions." in names[0] and tensor.ndim == 4:  # 1x1 conv weight -> linear weight
            tensor = tensor.flatten(1)
        parts = tensor.chunk(3, dim=0) if len(names) == 3 else (tensor,)
        for name, part in zip(names, parts):
            out[name] = part.contiguous().clone()
    return out


def with_current_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A UNet2DModel state dict with pre-0.14 attention names (query, key, value, proj_attn) renamed."""
    return {OLD_NAME.sub(lambda m: m.group(1) + OLD_ATTENTION_NAMES[m.group(2)] + ".", key): value
            for key, value in state.items()}


def from_diffusers(theirs: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                   where: str) -> dict[str, torch.Tensor]:
    """Our state dict, shaped like `expected` (a freshly built U-Net's), from UNet2DModel weights.

    Every expected parameter must be found with the right number of values and every given one used;
    InteropError names the first that is not, and `where` (the weights file)."""
    theirs = with_current_names(theirs)
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}
    for key, target in expected.items():
        names = diffusers_names(key)
        missing = [n for n in names if n not in theirs]
        if missing:
            raise InteropError(f"{where}: has no {missing[0]!r}, which this UNet2DModel config needs; "
                               "the weights belong to another architecture, or the file is incomplete")
        parts = [theirs[n] for n in names]
        tensor = torch.cat([p.reshape(p.shape[0], -1) for p in parts]) if len(parts) > 1 else parts[0]
        if tensor.numel() != target.numel() or tensor.shape[0] != target.shape[0]:
            shapes = " + ".join(str(tuple(p.shape)) for p in parts)
            raise InteropError(f"{where}: {names[0]!r} has shape {shapes}, but the config needs "
                               f"{tuple(target.shape)} for it; the config and the weights do not match")
        out[key] = tensor.reshape(target.shape).to(target.dtype).contiguous()
        used.update(names)
    extra = sorted(set(theirs) - used)
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise InteropError(f"{where}: {extra[0]!r}{more} has no place in the U-Net its config describes; the "
                           "weights belong to another architecture")
    return out
