"""Learning-rate schedule, EMA and gradient clipping against their formulas."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from workbench.engine.optim import EMA, ema_decay_at, lr_at
from workbench.engine.optim import clip_gradients


def test_warmup_is_linear_from_lr_over_warmup_to_lr():
    kw = dict(base_lr=1e-3, warmup_steps=4, total_steps=100, schedule="constant")
    assert [lr_at(s, **kw) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_cosine_decays_from_lr_to_lr_times_min_ratio():
    kw = dict(base_lr=1.0, warmup_steps=10, total_steps=110, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.1 + 0.9 * 0.5)                    # halfway: cos(pi/2) = 0
    assert lr_at(35, **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(110, **kw) == pytest.approx(0.1)
    assert lr_at(500, **kw) == pytest.approx(0.1)                               # stays at the floor
    assert lr_at(0, **{**kw, "warmup_steps": 0}) == pytest.approx(1.0)


def test_ema_decay_warmup_formula():
    assert ema_decay_at(0, 0.999, True) == pytest.approx(0.1)
    assert ema_decay_at(10, 0.999, True) == pytest.approx(11 / 20)
    assert ema_decay_at(100_000, 0.999, True) == 0.999
    assert ema_decay_at(0, 0.999, False) == 0.999


def test_ema_update_is_decay_times_ema_plus_one_minus_decay_times_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = EMA(model, decay=0.9, warmup=False)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model[1].running_mean.fill_(5.0)
    ema.update(step=0)
    after = ema.module.state_dict()
    for name, param in model.named_parameters():
        assert torch.allclose(after[name], 0.9 * before[name] + 0.1 * param.detach(), atol=1e-7), name
    assert torch.equal(after["1.running_mean"], torch.full((4,), 5.0))  # buffers are copied, not averaged
    assert all(not p.requires_grad for p in ema.module.parameters())


def test_ema_warmup_uses_the_ramped_decay():
    model = nn.Linear(2, 2)
    ema = EMA(model, decay=0.999, warmup=True)
    start = ema.module.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(step=0)  # decay 0.1: ema moves 90% of the way
    assert torch.allclose(ema.module.weight, 0.1 * start + 0.9 * model.weight.detach())


def test_clip_gradients_returns_the_norm_before_clipping_and_clips_to_max():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    norm = clip_gradients([a, b], max_norm=1.0)
    assert norm.item() == pytest.approx(5.0)
    total = torch.cat([a.grad, b.grad]).norm().item()
    assert total == pytest.approx(1.0, rel=1e-5)
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    assert clip_gradients([a, b], max_norm=0.0).item() == pytest.approx(5.0)  # 0 = off, norm still reported
    assert a.grad.tolist() == [3.0, 0.0]
