"""`ddpm-workbench export RUN --format diffusers OUT`: a DDPMPipeline folder diffusers loads and that computes
what our model computes; import-export-import is exact."""

from __future__ import annotations

import json

import pytest
import torch

from tests.interop.diffusers_models import inputs
from workbench.cli import main


def load_run(run_path, ema=True):
    from workbench.sampling.model import load_for_sampling

    return load_for_sampling(run=str(run_path), base_dir=run_path.parent, ema=ema)


@pytest.fixture
def small_run(small_folder, tmp_path):
    assert main(["import", str(small_folder), "--name", "small", "--dir", str(tmp_path / "runs")]) == 0
    return tmp_path / "runs" / "small"


def test_an_exported_run_loads_in_diffusers_and_computes_the_same(small_run, tmp_path):
    from diffusers import DDPMPipeline

    out = tmp_path / "pipe"
    assert main(["export", str(small_run), str(out), "--format", "diffusers"]) == 0
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(out.rglob("*.bin"))
    pipeline = DDPMPipeline.from_pretrained(out)
    ours = load_run(small_run).model
    x, t = inputs(1, 16)
    with torch.no_grad():
        assert (pipeline.unet(x, t).sample - ours(x, t)).abs().max() < 1e-5
    # and its scheduler has our schedule
    assert torch.allclose(pipeline.scheduler.alphas_cumprod.double(),
                          load_run(small_run).diffusion.float64["alphas_cumprod"], rtol=1e-5, atol=1e-7)
    images = pipeline(batch_size=1, num_inference_steps=2, output_type="np").images
    assert images.shape == (1, 16, 16, 1)


def test_import_export_import_is_exact(small_run, tmp_path):
    out = tmp_path / "pipe"
    assert main(["export", str(small_run), str(out)]) == 0
    assert main(["import", str(out), "--name", "again", "--dir", str(tmp_path / "runs")]) == 0
    first = torch.load(small_run / "checkpoints" / "latest.pt", weights_only=True)
    second = torch.load(tmp_path / "runs" / "again" / "checkpoints" / "latest.pt", weights_only=True)
    assert first["model"].keys() == second["model"].keys()
    assert all(torch.equal(first["model"][k], second["model"][k]) for k in first["model"])
    first["config"].pop("run"), second["config"].pop("run")
    assert first["config"] == second["config"]


def test_a_trained_run_exports_its_ema_weights_by_default(tiny_trained_run, tmp_path):
    from safetensors.torch import load_file

    from workbench.interop.diffusers_unet import to_diffusers

    assert main(["export", str(tiny_trained_run), str(tmp_path / "ema")]) == 0
    assert main(["export", str(tiny_trained_run), str(tmp_path / "raw"), "--no-ema"]) == 0
    exported = load_file(tmp_path / "ema" / "unet" / "diffusion_pytorch_model.safetensors")
    raw = load_file(tmp_path / "raw" / "unet" / "diffusion_pytorch_model.safetensors")
    ema, model = (to_diffusers(load_run(tiny_trained_run, ema=e).model.state_dict()) for e in (True, False))
    assert all(torch.equal(exported[k], ema[k]) for k in ema)
    assert all(torch.equal(raw[k], model[k]) for k in model)
    assert any(not torch.equal(ema[k], model[k]) for k in ema)


def test_a_class_conditional_run_exports_its_label_embedding(tmp_path):
    from diffusers import UNet2DModel

    from workbench.config import load_config
    from workbench.engine.checkpoint import encode_model_weights, save_run_checkpoint
    from workbench.engine.rundir import RunDirectory
    from workbench.backbones import build_backbone

    cfg = load_config(None, ["dataset.name=synthetic", "dataset.size=16", "dataset.pad_to=0", "backbone.preset=tiny",
                             "backbone.num_classes=3", "schedule.timesteps=20", "sample.steps=5"], search_cwd=False)
    model = build_backbone(cfg.backbone, in_channels=1, out_channels=1, image_size=16)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    run = RunDirectory.create(tmp_path / "runs", "labels")
    run.write_config(cfg.to_toml())
    state = encode_model_weights(cfg, channels=1, image_size=16, model=model.state_dict())
    save_run_checkpoint(run.checkpoints_dir, 0, state, keep=1)
    assert main(["export", str(run.path), str(tmp_path / "pipe")]) == 0
    config = json.loads((tmp_path / "pipe" / "unet" / "config.json").read_text())
    assert config["num_class_embeds"] == 4  # 3 classes and the "no label" one, last
    theirs = UNet2DModel.from_pretrained(tmp_path / "pipe" / "unet").eval()
    x, t = inputs(1, 16)
    labels = torch.tensor([2, 3])
    with torch.no_grad():
        assert (theirs(x, t, class_labels=labels).sample - model.eval()(x, t, labels)).abs().max() < 1e-5
        assert (theirs(x, t, class_labels=torch.tensor([3, 3])).sample - model(x, t)).abs().max() < 1e-5
