"""The U-Net's self-attention block: the multi-head attention of Ho et al. / ADM, computed the fast way."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench_plugins.backbones import unet
from workbench_plugins.backbones.unet import AttentionBlock


def reference_attention(block: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """x + proj(attention(qkv(norm(x)))) written out in float64: channel i of the 1x1 qkv convolution is
    q/k/v (i // C), head ((i % C) // (C / heads)), head channel (i % (C / heads)); every position attends
    to every position with softmax(q.k / sqrt(C / heads))."""
    b, c, height, width = x.shape
    heads, d = block.heads, c // block.heads
    x = x.double()
    h = F.group_norm(x, block.norm.num_groups, block.norm.weight.double(), block.norm.bias.double(), block.norm.eps)
    qkv = torch.einsum("oc,bcn->bon", block.qkv.weight.double()[:, :, 0, 0], h.reshape(b, c, -1))
    qkv = qkv + block.qkv.bias.double()[None, :, None]
    q, k, v = qkv.reshape(b, 3, heads, d, height * width).unbind(1)
    weights = torch.softmax(torch.einsum("bhdn,bhdm->bhnm", q, k) / d ** 0.5, dim=-1)
    out = torch.einsum("bhnm,bhdm->bhdn", weights, v).reshape(b, c, height * width)
    out = torch.einsum("oc,bcn->bon", block.proj.weight.double()[:, :, 0, 0], out) + block.proj.bias.double()[None, :, None]
    return x + out.reshape(b, c, height, width)


def random_block(channels: int, heads: int, seed: int = 0) -> AttentionBlock:
    torch.manual_seed(seed)
    block = AttentionBlock(channels, heads, groups=8)
    with torch.no_grad():  # proj starts at zero (the block starts as the identity); make every weight count
        for p in block.parameters():
            p.copy_(torch.randn(p.shape) * 0.2)
    return block


@pytest.mark.parametrize("heads", [1, 4])
@pytest.mark.parametrize("size", [8, 7])
@pytest.mark.parametrize("channels_last", [False, True])
def test_attention_matches_the_written_out_formula(heads, size, channels_last):
    block = random_block(32, heads)
    x = torch.randn(3, 32, size, size)
    if channels_last:
        block, x = block.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    got = block(x)
    assert got.shape == x.shape
    torch.testing.assert_close(got.double(), reference_attention(block, x), rtol=1e-5, atol=1e-5)


def test_each_head_attends_on_its_own_channels():
    """Changing the keys of head 0 changes only head 0's output channels (before the output projection)."""
    block = random_block(16, 2)
    with torch.no_grad():
        block.proj.weight.copy_(torch.eye(16)[:, :, None, None])
        block.proj.bias.zero_()
    x = torch.randn(2, 16, 4, 4)
    before = block(x) - x
    with torch.no_grad():
        block.qkv.weight[16:24] += torch.randn(8, 16, 1, 1)  # head 0's keys
    after = block(x) - x
    assert not torch.allclose(before[:, :8], after[:, :8])
    torch.testing.assert_close(before[:, 8:], after[:, 8:])


@pytest.mark.parametrize("channels_last", [False, True])
def test_heads_reach_attention_with_unit_stride(monkeypatch, channels_last):
    """scaled_dot_product_attention's fused CPU kernel needs each head's channels contiguous; with them
    strided it silently takes the slower math path (ddpm-cifar10 trained ~15% slower on CPU that way)."""
    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        seen.append((q.stride(-1), k.stride(-1), v.stride(-1)))
        return real(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    block = random_block(64, 4)
    x = torch.randn(2, 64, 8, 8)
    if channels_last:
        block, x = block.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    block(x)
    assert seen == [(1, 1, 1)]


@pytest.mark.parametrize("heads", [1, 4])
def test_under_cpu_bf16_autocast_attention_is_as_accurate_as_the_fused_kernel(monkeypatch, heads):
    """On CPU under bf16 autocast the block takes two explicit matmuls instead of
    scaled_dot_product_attention (faster there); its error against the float64 formula stays within bf16
    rounding and close to that of torch's fused kernel."""
    block = random_block(64, heads)
    x = torch.randn(2, 64, 8, 8)
    want = reference_attention(block, x)

    def rms_error() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = block(x)
        return (got.double() - want).pow(2).mean().sqrt().item()

    ours = rms_error()
    monkeypatch.setattr(unet, "dot_product_attention", F.scaled_dot_product_attention)
    fused = rms_error()
    assert 0 < ours < 0.02 and ours < 2 * fused, (ours, fused)
