"""Classifier-free guidance (Ho & Salimans 2022) lives in the one model function every sampling path uses:
W = 1 is the conditional network, W = 0 the unconditional one, other W combine both outputs of ONE batched
forward pass, before the output (eps, x0 or v) is turned into a prediction of x0, so every sampler gets it."""

from __future__ import annotations

import pytest
import torch

from tests.backbones.test_unet_model import randomize_zero_weights_
from tests.diffusion.helpers import host_with, sample_section
from tests.diffusion.test_sampler_protocol import Plugin
from workbench.diffusion import GaussianDiffusion, build_sampler, make_denoiser, sample_images
from workbench.diffusion import parametrization as param
from workbench.diffusion.sampling import process_x0
from workbench_plugins.backbones.unet import UNet, UNetConfig

CPU = torch.device("cpu")
CLASSES = 3


def conditional_unet() -> UNet:
    config = UNetConfig(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, groups=4, num_classes=CLASSES)
    return randomize_zero_weights_(UNet(1, 1, config), seed=1).eval()


class PerClassShift(torch.nn.Module):
    """A synthetic class-conditional network: 0.1 x + shift[y] (the no-label class CLASSES shifts by 0.2).
    It records the labels of every call."""

    config = UNetConfig(num_classes=CLASSES)

    def __init__(self, shifts=(1.0, -1.0, 3.0, 0.2)):
        super().__init__()
        self.shifts = torch.tensor(shifts)
        self.calls: list[list[int]] = []

    def forward(self, x, t, y=None):
        y = torch.full((x.shape[0],), CLASSES) if y is None else y
        self.calls.append(y.tolist())
        return 0.1 * x + self.shifts[y].reshape(-1, 1, 1, 1)


def inputs(batch=4):
    generator = torch.Generator().manual_seed(0)
    return torch.randn((batch, 1, 8, 8), generator=generator), torch.tensor([900, 500, 100, 10][:batch])


def test_guidance_1_is_the_conditional_network_and_0_the_unconditional_one_exactly():
    from workbench.sampling.model import model_function

    net = conditional_unet()
    x, t = inputs()
    labels = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        conditional = net(x, t, labels)
        unconditional = net(x, t)  # y=None: the no-label class
        assert not torch.allclose(conditional, unconditional)  # the labels matter to this network
        assert torch.equal(model_function(net, CPU, labels=labels, guidance=1.0)(x, t), conditional)
        assert torch.equal(model_function(net, CPU, labels=labels, guidance=0.0)(x, t), unconditional)
        guided = model_function(net, CPU, labels=labels, guidance=3.0)(x, t)
        torch.testing.assert_close(guided, unconditional + 3.0 * (conditional - unconditional), rtol=1e-4, atol=1e-5)


def test_other_scales_run_both_branches_in_one_forward_pass_labels_first():
    from workbench.sampling.model import model_function

    net = PerClassShift()
    x, t = inputs()
    out = model_function(net, CPU, labels=torch.tensor([0, 1, 2, 0]), guidance=2.5)(x, t)
    assert net.calls == [[0, 1, 2, 0, CLASSES, CLASSES, CLASSES, CLASSES]]
    shifts = torch.tensor([1.0, -1.0, 3.0, 1.0]).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(out, 0.1 * x + 0.2 + 2.5 * (shifts - 0.2))


def test_guidance_is_combined_on_the_network_output_before_the_conversion_to_a_clipped_x0():
    # With v-prediction the x0 of the guided output is clipped once; guiding the two clipped x0 predictions
    # instead (what a sampler-side combination would do) gives another picture wherever clipping bit.
    from workbench.sampling.model import model_function

    diffusion = GaussianDiffusion(torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), prediction="v")
    net = PerClassShift()
    x, t = inputs()
    labels = torch.tensor([0, 1, 2, 0])
    denoise = make_denoiser(model_function(net, CPU, labels=labels, guidance=3.0), diffusion.schedule, CPU)
    a = diffusion.schedule.sqrt_alphas_cumprod[t].float().reshape(-1, 1, 1, 1)
    b = diffusion.schedule.sqrt_one_minus_alphas_cumprod[t].float().reshape(-1, 1, 1, 1)
    cond, uncond = net(x, t, labels), net(x, t)
    x0_of = lambda v: process_x0(param.x0_from_output("v", v, x, a, b), True, 0.0)  # noqa: E731
    expected = x0_of(uncond + 3.0 * (cond - uncond))
    combined_after = x0_of(uncond) + 3.0 * (x0_of(cond) - x0_of(uncond))
    got = denoise(x, t)
    torch.testing.assert_close(got, expected)
    assert got.abs().max() <= 1.0 and (combined_after - expected).abs().max() > 0.5


@pytest.mark.parametrize("sampler_name", ["heun", "tiny", "ddpm"])
def test_every_sampler_gets_guidance_without_cooperation(sampler_name):
    # heun calls the network twice per step with fractional timesteps; "tiny" is a third-party sampler of
    # the earlier protocol (handed pred_x0). Both see guided predictions through the shared loop.
    from workbench.sampling.model import model_function

    sampler = build_sampler(sample_section(sampler_name, host=host_with(Plugin(), "thirdparty")))
    diffusion = GaussianDiffusion(torch.linspace(1e-4, 0.02, 100, dtype=torch.float64))
    labels = torch.tensor([0, 1, 2])
    net = PerClassShift(shifts=(0.5, -0.5, 0.1, 0.0))

    def by_hand(x_t, t):  # the guided output from two separate calls
        cond, uncond = net(x_t, t, labels), net(x_t, t)
        return uncond + 4.0 * (cond - uncond)

    results = []
    for model_fn in (model_function(net, CPU, labels=labels, guidance=4.0), by_hand):
        net.calls.clear()
        results.append(sample_images(model_fn, diffusion, sampler, (3, 1, 4, 4), steps=10,
                                     generator=torch.Generator().manual_seed(0), noise=torch.zeros(3, 1, 4, 4)))
        if model_fn is not by_hand:
            assert net.calls and all(call == [0, 1, 2, CLASSES, CLASSES, CLASSES] for call in net.calls)
    torch.testing.assert_close(results[0], results[1])
    plain = sample_images(model_function(net, CPU, labels=labels), diffusion, sampler, (3, 1, 4, 4), steps=10,
                          generator=torch.Generator().manual_seed(0), noise=torch.zeros(3, 1, 4, 4))
    assert not torch.allclose(plain, results[0])  # guidance changed the samples


def test_a_negative_or_missing_scale_and_a_model_without_a_no_label_class_are_refused():
    from workbench.sampling.model import model_function

    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="must be 0 or more"):
            model_function(PerClassShift(), CPU, labels=torch.tensor([0]), guidance=bad)
    with pytest.raises(ValueError, match="pass null_label"):
        model_function(torch.nn.Identity(), CPU, labels=torch.tensor([0]), guidance=2.0)
    # an unconditional model ignores the scale: nothing to guide
    model_function(torch.nn.Identity(), CPU, labels=None, guidance=2.0)
