"""A sampler that returns NaN: `sample` says which sampler and writes nothing; training previews say so in the
event log instead of saving a grey grid."""

from __future__ import annotations

import json

import pytest

from tests.faults.helpers import cli, make_distribution, one_line_error, tiny_args

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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run of 2 steps with a NaN sampler for its previews, and its site folder."""
    tmp_path = tmp_path_factory.mktemp("nan")
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "wbfault-nan", "wbfault_nan", NAN_SAMPLER)
    result = cli(tmp_path, "train", "--plain", *tiny_args("train.steps=2", "sample.name=nan-sampler",
                                                         "run.dir=runs", "run.name=r"), plugins=site)
    return tmp_path, site, result


def test_training_previews_with_nan_are_a_warning_not_a_picture(trained):
    tmp_path, _, result = trained
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "runs" / "r"
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    warnings = [e["message"] for e in events if e["kind"] == "warning"]
    assert any("sampler 'nan-sampler' with backbone 'unet' produced non-finite values" in w for w in warnings)
    assert list((run / "samples").iterdir()) == [], "no grey grid saved as if it were a sample"


@pytest.mark.parametrize("fmt, out", [("grid", "s.png"), ("npz", "s.npz"), ("pngs", "pngs")])
def test_sample_with_a_nan_sampler_is_one_line_and_writes_nothing(trained, fmt, out):
    tmp_path, site, _ = trained
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli(tmp_path, "sample", "-q", "--run", "r", "--dir", "runs", "--n", "4", "--format", fmt,
                 "--out", out, plugins=site)
    line = one_line_error(result, 1)
    assert "sampler 'nan-sampler' with backbone 'unet' produced non-finite values" in line
    assert "nothing was written" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before
