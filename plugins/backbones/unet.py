"""The DDPM / ADM U-Net: residual blocks with a timestep embedding, self-attention, skip connections.

Block layout follows the official DDPM code (Ho et al. 2020, diffusion_tf/models/unet.py) so that the
`ddpm-cifar10` preset has exactly its 35,746,307 parameters; the optional scale-shift conditioning and
multi-head attention follow ADM (Dhariwal & Nichol 2021, "use_scale_shift_norm", "num_head_channels").

Sizes that do not halve evenly are handled: a level of size s is followed by one of size ceil(s / 2)
(28 -> 14 -> 7 -> 4), and every upsample goes to the exact size of the skip connection it meets.

The stride-2 downsampling convolution pads its input one of two ways (`downsample_padding`): "symmetric"
(one pixel on every side, PyTorch's padding=1: what this U-Net has always done, and ADM) or "tf-same"
(TensorFlow's 'SAME': on an even size one pixel at the bottom and right only, as the original DDPM code and
diffusers' `downsample_padding=0`). Both give the same shapes and parameters, so a checkpoint loads into
either; only the second reproduces weights trained in TensorFlow (google/ddpm-cifar10-32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

RESAMPLE_MODES = ("conv", "pool")
DOWNSAMPLE_PADDINGS = ("symmetric", "tf-same")
EMBEDDING_ORDERS = ("sin-cos", "cos-sin")
FREQ_SHIFTS = (0, 1)


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a `UNet`; everything but the input/output channel counts."""

    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = ()  # level indices that get self-attention (0 = full resolution)
    mid_attention: bool = True
    num_heads: int = 1
    head_channels: int = 0  # > 0: heads = channels // head_channels (ADM), overriding num_heads
    dropout: float = 0.0
    groups: int = 32
    scale_shift: bool = False
    resample: str = "conv"
    downsample_padding: str = "symmetric"  # or "tf-same" (see the module docstring)
    # The timestep embedding and the norms as the original DDPM code (Ho et al.); the other values are those
    # of U-Nets trained with diffusers' defaults (flip_sin_to_cos=True, freq_shift=0, norm_eps=1e-5).
    time_embedding: str = "sin-cos"  # or "cos-sin"
    freq_shift: int = 1  # frequencies 10000^(-i / (dim/2 - freq_shift))
    norm_eps: float = 1e-6  # GroupNorm eps (tf.contrib.layers.group_norm's)
    num_classes: int = 0  # > 0: class-conditional, with one extra "no label" class for y=None

    def level_channels(self) -> list[int]:
        return [self.base_channels * m for m in self.channel_mult]

    def heads_for(self, channels: int) -> int:
        return channels // self.head_channels if self.head_channels > 0 else self.num_heads


def timestep_embedding(t: torch.Tensor, dim: int, order: str = "sin-cos", freq_shift: int = 1) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, by default as Ho et al. 2020 (sin, then cos;
    frequencies 10000^(-i / (dim/2 - 1))). The float32 arithmetic is diffusers' (`get_timestep_embedding`):
    -log(10000) * i first, then the division; the other order differs in the last bit of some
    frequencies, which at t ~ 1000 moves the embedding by up to 6e-5 and breaks parity with imported models."""
    half = dim // 2
    exponent = -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32)
    freqs = torch.exp(exponent / max(half - freq_shift, 1))
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    waves = (torch.sin(args), torch.cos(args)) if order == "sin-cos" else (torch.cos(args), torch.sin(args))
    emb = torch.cat(waves, dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def group_norm(channels: int, groups: int, eps: float = 1e-6) -> nn.GroupNorm:
    # eps 1e-6 as tf.contrib.layers.group_norm in the original DDPM code (UNetConfig.norm_eps)
    return nn.GroupNorm(groups, channels, eps=eps)


class ResBlock(nn.Module):
    """GN-SiLU-conv, + time embedding, GN-SiLU-dropout-conv, with a 1x1 shortcut when channels change.

    With `scale_shift` the embedding modulates the second norm as norm(h) * (1 + scale) + shift (ADM)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, dropout: float, groups: int, scale_shift: bool,
                 eps: float = 1e-6):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = group_norm(in_ch, groups, eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_ch * (2 if scale_shift else 1))
        self.norm2 = group_norm(out_ch, groups, eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb_proj(F.silu(emb))[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.shortcut(x) + h


def dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (B, heads, positions, d), d = channels per head (Ho et al. 2020 with one
    head, ADM with several). On a CPU under bf16 autocast, two plain matmuls beat scaled_dot_product_attention:
    its fused CPU kernel is slow for narrow heads (d = 16: 5x slower fused, 1.8x via its math path, forward +
    backward) and about even at d = 256; positions are few in these U-Nets, so the (positions x positions)
    scores are small. Elsewhere (CUDA, fp32) scaled_dot_product_attention picks a fused kernel."""
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2), dim=-1) @ v
    return F.scaled_dot_product_attention(q, k, v)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all positions: GN, 1x1 q/k/v, softmax(q k^T / sqrt(d)) v, 1x1 out."""

    def __init__(self, channels: int, heads: int, groups: int, eps: float = 1e-6):
        super().__init__()
        self.heads = heads
        self.norm = group_norm(channels, groups, eps)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        # The 1x1 convolutions run as matmuls over positions, (B, HW, C) @ (C, 3C): on CPU that is ~25% faster
        # than oneDNN's 1x1 convolution backward, and it leaves each head's channels with unit stride, which
        # scaled_dot_product_attention's fused kernels need (with channels strided by HW it falls back to its
        # slower math path). The parameters stay Conv2d weights, so checkpoints don't change.
        h = self.norm(x).permute(0, 2, 3, 1)
        qkv = F.linear(h, self.qkv.weight.view(3 * c, c), self.qkv.bias)
        q, k, v = qkv.reshape(b, height * width, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        h = dot_product_attention(q, k, v)
        h = F.linear(h.transpose(1, 2).reshape(b, height, width, c), self.proj.weight.view(c, c), self.proj.bias)
        return x + h.permute(0, 3, 1, 2)


def tf_same_padding(size: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) of a 3x3 stride-2 convolution over `size` pixels: enough
    for ceil(size / 2) outputs, the odd pixel after. Even sizes: (0, 1); odd sizes: (1, 1)."""
    total = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
    return total // 2, total - total // 2


class Downsample(nn.Module):
    """Halve the size (rounding up): 3x3 stride-2 conv (padded "symmetric" or "tf-same"), or 2x2 average
    pooling."""

    def __init__(self, channels: int, mode: str, padding: str = "symmetric"):
        super().__init__()
        self.tf_same = padding == "tf-same"
        self.conv = None
        if mode == "conv":
            self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0 if self.tf_same else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return F.avg_pool2d(x, 2, ceil_mode=True)
        if self.tf_same:
            top, bottom = tf_same_padding(x.shape[-2])
            left, right = tf_same_padding(x.shape[-1])
            x = F.pad(x, (left, right, top, bottom))
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling to the skip connection's exact size, then (mode "conv") a 3x3 conv."""

    def __init__(self, channels: int, mode: str):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if mode == "conv" else None

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x) if self.conv is not None else x


class Level(nn.Module):
    """The residual (+ attention) blocks of one resolution, on one side of the U."""

    def __init__(self, blocks: list[ResBlock], attentions: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attentions = nn.ModuleList(attentions)


class UNet(nn.Module):
    """`forward(x, t, y=None)`: x (B, in_channels, H, W), timesteps t (B,) -> (B, out_channels, H, W).

    Timesteps may be integers or floats. Class labels `y` (B,) are used only when built with
    `num_classes > 0`; y=None (or the label `num_classes`) then means "no label" (for classifier-free
    guidance). Without classes, y is ignored."""

    def __init__(self, in_channels: int, out_channels: int, config: UNetConfig):
        super().__init__()
        cfg = config
        self.config = cfg
        self.in_channels, self.out_channels = in_channels, out_channels
        ch, emb_dim = cfg.base_channels, 4 * cfg.base_channels
        block = dict(emb_dim=emb_dim, dropout=cfg.dropout, groups=cfg.groups, scale_shift=cfg.scale_shift,
                     eps=cfg.norm_eps)

        def attention(channels: int) -> nn.Module:
            return AttentionBlock(channels, cfg.heads_for(channels), cfg.groups, cfg.norm_eps)

        # Ho et al.: sinusoid(ch) -> dense(4ch) -> SiLU -> dense(4ch); blocks apply SiLU before their projection
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes > 0 else None
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)

        levels = cfg.level_channels()
        skip_channels = [ch]
        self.down = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        current = ch
        for i, out_ch in enumerate(levels):
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(current, out_ch, **block))
                attns.append(attention(out_ch) if i in cfg.attention_levels else nn.Identity())
                current = out_ch
                skip_channels.append(current)
            self.down.append(Level(blocks, attns))
            if i != len(levels) - 1:
                self.downsamples.append(Downsample(current, cfg.resample, cfg.downsample_padding))
                skip_channels.append(current)

        self.mid_block1 = ResBlock(current, current, **block)
        self.mid_attention = attention(current) if cfg.mid_attention else nn.Identity()
        self.mid_block2 = ResBlock(current, current, **block)

        self.up = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for i, out_ch in reversed(list(enumerate(levels))):
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(current + skip_channels.pop(), out_ch, **block))
                attns.append(attention(out_ch) if i in cfg.attention_levels else nn.Identity())
                current = out_ch
            self.up.append(Level(blocks, attns))
            if i != 0:
                self.upsamples.append(Upsample(current, cfg.resample))

        self.norm_out = group_norm(current, cfg.groups, cfg.norm_eps)
        self.conv_out = nn.Conv2d(current, out_channels, 3, padding=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Ho et al.'s init: fan-avg uniform (Xavier) weights, zero biases, and zero for the last layer of
        every residual branch and of the network, so each block starts as the identity (ADM zero_module)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, ResBlock):
                nn.init.zeros_(module.conv2.weight)
            elif isinstance(module, AttentionBlock):
                nn.init.zeros_(module.proj.weight)
        nn.init.zeros_(self.conv_out.weight)

    def embed(self, t: torch.Tensor, y: torch.Tensor | None, batch: int) -> torch.Tensor:
        if t.ndim == 0:
            t = t.expand(batch)
        cfg = self.config
        emb = self.time_mlp(timestep_embedding(t, cfg.base_channels, cfg.time_embedding, cfg.freq_shift))
        if self.label_emb is not None:
            if y is None:
                y = torch.full((batch,), self.config.num_classes, dtype=torch.long, device=emb.device)
            emb = emb + self.label_emb(y)
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed(torch.as_tensor(t, device=x.device), y, x.shape[0])
        h = self.conv_in(x)
        skips = [h]
        for i, level in enumerate(self.down):
            for block, attn in zip(level.blocks, level.attentions):
                h = attn(block(h, emb))
                skips.append(h)
            if i < len(self.downsamples):
                h = self.downsamples[i](h)
                skips.append(h)

        h = self.mid_block2(self.mid_attention(self.mid_block1(h, emb)), emb)

        for i, level in enumerate(self.up):
            for block, attn in zip(level.blocks, level.attentions):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), emb))
            if i < len(self.upsamples):
                h = self.upsamples[i](h, skips[-1].shape[-2:])
        return self.conv_out(F.silu(self.norm_out(h)))
