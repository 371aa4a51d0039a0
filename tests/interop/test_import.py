"""`ddpm-workbench import`: a diffusers model becomes a run that computes what diffusers computes."""

from __future__ import annotations

import json

import pytest
import torch

from tests.interop.diffusers_models import CIFAR10_32, DIFFUSERS_DEFAULTS, inputs, random_unet, save_pipeline
from workbench.cli import main


def load_imported(run_path):
    from workbench.sampling.model import load_for_sampling

    return load_for_sampling(run=str(run_path), base_dir=run_path.parent)


@pytest.fixture(scope="module")
def cifar_run(cifar_folder, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    assert main(["import", str(cifar_folder), "--name", "cifar", "--dir", str(base)]) == 0
    return base / "cifar"


def test_the_ddpm_cifar10_32_model_gives_diffusers_outputs(cifar_unet, cifar_run):
    bundle = load_imported(cifar_run)
    assert sum(p.numel() for p in bundle.model.parameters()) == 35_746_307
    x, t = inputs(3, 32)
    with torch.no_grad():
        theirs, ours = cifar_unet(x, t).sample, bundle.model(x, t)
    assert theirs.std() > 0.1  # a real signal, not near-zero outputs that would agree anyway
    assert (ours - theirs).abs().max() < 1e-5


def test_the_original_padding_is_what_makes_it_match(cifar_unet, cifar_run):
    from workbench.backbones import build_backbone

    bundle = load_imported(cifar_run)
    assert bundle.cfg.backbone.downsample_padding == "tf-same"
    symmetric = bundle.cfg.with_overrides(["backbone.downsample_padding=symmetric"])
    model = build_backbone(symmetric.backbone, in_channels=3, out_channels=3, image_size=32).eval()
    model.load_state_dict(bundle.model.state_dict())
    x, t = inputs(3, 32)
    with torch.no_grad():
        assert (model(x, t) - cifar_unet(x, t).sample).abs().max() > 1e-3


def test_its_scheduler_maps_to_the_same_alphas_cumprod_and_sampler(cifar_folder, cifar_run):
    from diffusers import DDPMScheduler

    bundle = load_imported(cifar_run)
    theirs = DDPMScheduler.from_pretrained(cifar_folder / "scheduler").alphas_cumprod.double()
    ours = bundle.diffusion.float64["alphas_cumprod"]
    assert ours.shape == theirs.shape == (1000,)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-7)  # diffusers computes in float32, we in float64
    cfg = bundle.cfg
    assert (cfg.train.prediction, cfg.sample.name, cfg.sample.variance, cfg.sample.clip_x0) == \
        ("eps", "ddpm", "fixed-large", True)
    assert cfg.sample.steps == 1000  # DDPMPipeline's default: every timestep


def test_the_run_reads_like_any_other_and_says_where_it_came_from(cifar_folder, cifar_run):
    from workbench.engine.rundir import RunDirectory

    run = RunDirectory.resolve("cifar", cifar_run.parent)
    status = run.read_status()
    assert status["state"] == "finished"
    assert status["imported"]["format"] == "diffusers" and status["imported"]["source"] == str(cifar_folder)
    assert [e.kind for e in run.history()] == ["started", "checkpoint", "finished"]
    config = (cifar_run / "config.toml").read_text()
    assert config.count('downsample_padding = "tf-same"') == 1
    assert 'preset = "ddpm-cifar10"' in config  # the nearest preset, as a label: every field is set


def test_old_attention_names_and_a_bin_file_import_the_same(cifar_unet, tmp_path):
    """Files from diffusers before 0.14 (google/ddpm-cifar10-32's) name attention query/key/value/proj_attn."""
    folder = tmp_path / "old"
    folder.mkdir()
    config = {"_class_name": "UNet2DModel", "_diffusers_version": "0.0.4",
              **{k: list(v) if isinstance(v, tuple) else v for k, v in CIFAR10_32.items()}}
    (folder / "config.json").write_text(json.dumps(config))
    renames = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    state = {}
    for key, value in cifar_unet.state_dict().items():
        for new, old in renames.items():
            key = key.replace(new, old)
        state[key] = value
    assert any(".query." in k for k in state)
    torch.save(state, folder / "diffusion_pytorch_model.bin")
    assert main(["import", str(folder), "--dir", str(tmp_path / "runs")]) == 0
    bundle = load_imported(tmp_path / "runs" / "old")
    x, t = inputs(3, 32, seed=1)
    with torch.no_grad():
        assert (bundle.model(x, t) - cifar_unet(x, t).sample).abs().max() < 1e-5
    # a bare UNet folder has no scheduler: DDPMScheduler's defaults apply
    assert (bundle.cfg.schedule.name, bundle.cfg.sample.variance) == ("linear", "fixed-small")


def test_a_unet_with_diffusers_default_embedding_and_norms_imports_and_exports_exactly(tmp_path):
    """flip_sin_to_cos=True, freq_shift=0, norm_eps=1e-5 (what diffusers' training example trains) map to
    time_embedding = "cos-sin", freq_shift = 0, norm_eps = 1e-5, and back."""
    theirs = random_unet(DIFFUSERS_DEFAULTS)
    assert (theirs.config.flip_sin_to_cos, theirs.config.freq_shift, theirs.config.norm_eps) == (True, 0, 1e-5)
    save_pipeline(tmp_path / "trained", theirs, {})
    assert main(["import", str(tmp_path / "trained"), "--dir", str(tmp_path / "runs")]) == 0
    bundle = load_imported(tmp_path / "runs" / "trained")
    backbone = bundle.cfg.backbone
    assert (backbone.time_embedding, backbone.freq_shift, backbone.norm_eps) == ("cos-sin", 0, 1e-5)
    x, t = inputs(3, 16)
    with torch.no_grad():
        assert (bundle.model(x, t) - theirs(x, t).sample).abs().max() < 1e-5
    assert main(["export", str(tmp_path / "runs" / "trained"), str(tmp_path / "out")]) == 0
    config = json.loads((tmp_path / "out" / "unet" / "config.json").read_text())
    assert (config["flip_sin_to_cos"], config["freq_shift"], config["norm_eps"]) == (True, 0, 1e-5)
