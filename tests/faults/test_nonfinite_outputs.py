"""A sampler that returns NaN: `sample` says which sampler and writes nothing; training previews say so in the
event log instead of saving a grey grid."""

from __future__ import annotations

import json

import pytest

from tests.faults.helpers import make_distribution, tiny_args

NAN_SAMPLER = '''
import torch
from workbench.plugin_host import hookimpl


class NanSampler:
    name = "nan-sampler"

    def set_timesteps(self, diffusion, steps, device):
        return list(range(diffusion.num_timesteps - 1, -1, -max(1, diffusion.num_timesteps // steps)))[:steps]

    def step(self, i, x, pred_x0, generator):
        return torch.full_like(x, float("nan"))


@hookimpl
def register_samplers(register):
    register("nan-sampler", NanSampler, description="returns NaN")
'''


@pytest.fixture
def trained(tmp_path, site):
    """A run of 2 steps with a NaN sampler for its previews (in this process: no torch start-up per test)."""
    from workbench.cli import main

    make_distribution(site, "wbfault-nan", "wbfault_nan", NAN_SAMPLER)
    code = main(["train", "--plain", *tiny_args("train.steps=2", "sample.name=nan-sampler",
                                                f"run.dir={tmp_path / 'runs'}", "run.name=r")])
    return tmp_path, code


def test_training_previews_with_nan_are_a_warning_not_a_picture(trained):
    tmp_path, code = trained
    assert code == 0
    run = tmp_path / "runs" / "r"
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    warnings = [e["message"] for e in events if e["kind"] == "warning"]
    assert any("sampler 'nan-sampler' with backbone 'unet' produced non-finite values" in w for w in warnings)
    assert list((run / "samples").iterdir()) == [], "no grey grid saved as if it were a sample"


def test_sample_with_a_nan_sampler_is_one_line_and_writes_nothing(trained, capsys):
    from workbench.cli import main

    tmp_path, _ = trained
    capsys.readouterr()
    for fmt, out in [("grid", "s.png"), ("npz", "s.npz"), ("pngs", "pngs")]:
        before = sorted(p.name for p in tmp_path.iterdir())
        assert main(["sample", "-q", "--run", "r", "--dir", str(tmp_path / "runs"), "--n", "4", "--format", fmt,
                     "--out", str(tmp_path / out)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "sampler 'nan-sampler' with backbone 'unet' produced non-finite" in err
        assert "nothing was written" in err
        assert sorted(p.name for p in tmp_path.iterdir()) == before
