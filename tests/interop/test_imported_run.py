"""An imported run is a run like any other: the workbench attaches to it, `sample` samples from it."""

from __future__ import annotations

import asyncio

import torch

from tests.interop.diffusers_models import SMALL, inputs, random_unet, save_pipeline
from workbench.cli import main


async def test_attach_replays_an_imported_run_as_finished(small_folder, tmp_path):
    from workbench.config import load_config
    from workbench.engine.rundir import RunDirectory
    from workbench.tui.app import WorkbenchApp

    assert main(["import", str(small_folder), "--dir", str(tmp_path / "runs")]) == 0
    run = RunDirectory.resolve("small", tmp_path / "runs")
    app = WorkbenchApp(load_config(None, [], search_cwd=False), run=run, watch_interval_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        deadline = asyncio.get_running_loop().time() + 30
        while not (app.model and any(e.text.startswith("finished at step 0") for e in app.model.log)):
            assert asyncio.get_running_loop().time() < deadline, "the imported run's history never replayed"
            await pilot.pause(0.05)
        assert app.model.state == "finished"
        assert f"imported from {small_folder}" in app.model.started.backbone
        assert [step for step, _ in app.model.checkpoints] == [0]


def test_sample_reads_an_imported_run(small_folder, tmp_path, capsys):
    assert main(["import", str(small_folder), "--dir", str(tmp_path / "runs")]) == 0
    out = tmp_path / "grid.png"
    assert main(["sample", "--run", "small", "--dir", str(tmp_path / "runs"), "--n", "2", "--steps", "2",
                 "--device", "cpu", "--out", str(out)]) == 0
    assert out.is_file() and out.stat().st_size > 0


def test_a_class_conditional_unet2dmodel_imports_with_its_labels(tmp_path):
    from workbench.sampling.model import load_for_sampling

    theirs = random_unet({**SMALL, "num_class_embeds": 4})
    save_pipeline(tmp_path / "labels", theirs, {})
    assert main(["import", str(tmp_path / "labels"), "--dir", str(tmp_path / "runs")]) == 0
    bundle = load_for_sampling(run="labels", base_dir=tmp_path / "runs")
    assert bundle.cfg.backbone.num_classes == 3  # the fourth row is the "no label" class
    assert bundle.cfg.backbone.preset == "tiny"  # the nearest preset (fewest differing fields)
    x, t = inputs(1, 16)
    labels = torch.tensor([0, 3])
    with torch.no_grad():
        assert (bundle.model(x, t, labels) - theirs(x, t, class_labels=labels).sample).abs().max() < 1e-5
