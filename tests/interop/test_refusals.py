"""Bad inputs to import and export: one line each, exit code 1, nothing written."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tests.interop.diffusers_models import SMALL, random_unet, save_pipeline
from workbench.cli import main


def one_line_error(capsys, args, *expected):
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def import_args(source, tmp_path):
    return ["import", str(source), "--dir", str(tmp_path / "runs")]


def assert_no_run(tmp_path):
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_folder_without_config(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(capsys, import_args(tmp_path / "empty", tmp_path), "has no config.json")
    assert_no_run(tmp_path)


def test_a_config_of_another_model_class(capsys, small_folder, tmp_path):
    path = small_folder / "unet" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "_class_name": "UNet2DConditionModel"}))
    one_line_error(capsys, import_args(small_folder, tmp_path), "_class_name = 'UNet2DConditionModel'",
                   "only UNet2DModel")
    assert_no_run(tmp_path)


@pytest.mark.parametrize("field, value", [("time_embedding_type", "fourier"), ("freq_shift", 2), ("act_fn", "gelu"),
                                          ("upsample_type", "resnet"), ("downsample_padding", 2)])
def test_a_config_field_with_no_counterpart_is_named(capsys, small_folder, tmp_path, field, value):
    path = small_folder / "unet" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    one_line_error(capsys, import_args(small_folder, tmp_path), f"UNet2DModel config {field} = {value!r}")
    assert_no_run(tmp_path)


def test_truncated_safetensors(capsys, small_folder, tmp_path):
    weights = small_folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    one_line_error(capsys, import_args(small_folder, tmp_path), "is truncated or not a safetensors file")
    assert_no_run(tmp_path)


def test_truncated_bin(capsys, small_unet, tmp_path):
    small_unet.save_pretrained(tmp_path / "bin", safe_serialization=False)
    weights = tmp_path / "bin" / "diffusion_pytorch_model.bin"
    weights.write_bytes(weights.read_bytes()[:5000])
    one_line_error(capsys, import_args(tmp_path / "bin", tmp_path), "is truncated or not a PyTorch weights file")
    assert_no_run(tmp_path)


class Payload:
    def __reduce__(self):  # what a malicious pickle does: run code when loaded
        return (os.system, ("echo pwned > pwned.txt",))


def test_a_pickle_that_needs_code_is_refused_without_running_it(capsys, small_unet, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small_unet.save_pretrained(tmp_path / "bin", safe_serialization=False)
    weights = tmp_path / "bin" / "diffusion_pytorch_model.bin"
    torch.save({"conv_in.weight": Payload()}, weights)
    one_line_error(capsys, import_args(tmp_path / "bin", tmp_path), "needs Python code to load; refusing it")
    assert not (tmp_path / "pwned.txt").exists()
    assert_no_run(tmp_path)


def test_weights_of_another_shape(capsys, tmp_path):
    wider = random_unet({**SMALL, "block_out_channels": (16, 48)})
    save_pipeline(tmp_path / "model", random_unet(SMALL), {})
    wider.save_pretrained(tmp_path / "wider")
    os.replace(tmp_path / "wider" / "diffusion_pytorch_model.safetensors",
               tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors")
    one_line_error(capsys, import_args(tmp_path / "model", tmp_path), "has shape", "the config and the weights "
                   "do not match")
    assert_no_run(tmp_path)


def test_weights_with_parts_the_config_does_not_have(capsys, tmp_path):
    save_pipeline(tmp_path / "model", random_unet(SMALL), {})
    conditional = random_unet({**SMALL, "num_class_embeds": 3})
    conditional.save_pretrained(tmp_path / "conditional")
    os.replace(tmp_path / "conditional" / "diffusion_pytorch_model.safetensors",
               tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors")
    one_line_error(capsys, import_args(tmp_path / "model", tmp_path),
                   "'class_embedding.weight' has no place in the U-Net its config describes")
    assert_no_run(tmp_path)


def test_weights_missing_a_part(capsys, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = save_pipeline(tmp_path / "model", random_unet(SMALL), {})
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    del state["mid_block.attentions.0.to_k.weight"]
    save_file(state, weights)
    one_line_error(capsys, import_args(folder, tmp_path), "has no 'mid_block.attentions.0.to_k.weight'")
    assert_no_run(tmp_path)


def test_a_learned_variance_scheduler(capsys, small_folder, tmp_path):
    path = small_folder / "scheduler" / "scheduler_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "variance_type": "learned_range"}))
    one_line_error(capsys, import_args(small_folder, tmp_path), "scheduler config variance_type = 'learned_range'")


def test_a_hub_id_without_network_says_how_to_pass_a_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    one_line_error(capsys, import_args("google/ddpm-cifar10-32", tmp_path),
                   "cannot fetch 'google/ddpm-cifar10-32' from the Hugging Face Hub", "--local-dir DIR",
                   "ddpm-workbench import DIR")


def test_neither_folder_nor_hub_id(capsys, tmp_path):
    one_line_error(capsys, import_args(tmp_path / "no" / "such" / "folder", tmp_path), "neither a folder nor")


def trained_like(tmp_path, *overrides):
    """A run directory holding an untrained unet with `overrides`, as the export command reads it."""
    from workbench.config import load_config
    from workbench.engine.checkpoint import encode_model_weights, save_run_checkpoint
    from workbench.engine.rundir import RunDirectory
    from workbench.backbones import build_backbone

    cfg = load_config(None, ["dataset.name=synthetic", "dataset.pad_to=0", "backbone.base_channels=8",
                             "schedule.timesteps=20", "sample.steps=5", *overrides], search_cwd=False)
    size = cfg.dataset.size
    model = build_backbone(cfg.backbone, in_channels=1, out_channels=1, image_size=size)
    run = RunDirectory.create(tmp_path / "runs", "run")
    run.write_config(cfg.to_toml())
    state = encode_model_weights(cfg, channels=1, image_size=size, model=model.state_dict())
    save_run_checkpoint(run.checkpoints_dir, 0, state, keep=1)
    return run.path


@pytest.mark.parametrize("overrides, expected", [
    (["backbone.resample=pool"], "resample = 'pool' cannot be exported"),
    (["dataset.size=18"], "image size 18 cannot be exported"),
    (["backbone.num_heads=2", "backbone.channel_mult=[1, 2]", "backbone.attention_resolutions=[32]"],
     "num_heads = 2 cannot be exported"),
])
def test_export_refuses_what_unet2dmodel_cannot_express(capsys, tmp_path, overrides, expected):
    run = trained_like(tmp_path, *overrides)
    one_line_error(capsys, ["export", str(run), str(tmp_path / "out")], expected)
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_folder_that_holds_something(capsys, tmp_path):
    run = trained_like(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    one_line_error(capsys, ["export", str(run), str(tmp_path / "out")], "is not an empty folder")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
