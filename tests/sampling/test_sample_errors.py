"""Bad input to `ddpm-workbench sample`: one line on stderr, the right exit code, and no file left behind."""

from __future__ import annotations

import os

import pytest
import torch

from workbench.cli import main


def listing(folder) -> set[str]:
    """Everything in `folder`, hidden temporaries included."""
    return set(os.listdir(folder))


def fails(capsys, folder, args, code, *fragments) -> str:
    """Run `sample` with `args`; check the exit code, one `error:` line with `fragments`, and that `folder`
    is unchanged (no output and no temporary left behind)."""
    before = listing(folder)
    assert main(["sample", "-q", *args]) == code
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert listing(folder) == before
    return err


def test_run_and_checkpoint_both_or_neither(capsys, tmp_path, tiny_checkpoint):
    out = str(tmp_path / "s.png")
    fails(capsys, tmp_path, ["--run", "tiny", "--checkpoint", str(tiny_checkpoint), "--out", out], 2, "not both")
    fails(capsys, tmp_path, ["--out", out], 2, "--run RUN", "--checkpoint FILE")


def test_missing_checkpoint_and_missing_run(capsys, tmp_path):
    out = str(tmp_path / "s.png")
    fails(capsys, tmp_path, ["--checkpoint", str(tmp_path / "nope.pt"), "--out", out], 1, "nope.pt", "does not exist")
    fails(capsys, tmp_path, ["--run", "nope", "--dir", str(tmp_path), "--out", out], 1, "run 'nope' not found")


def test_truncated_checkpoint(capsys, tmp_path, tiny_checkpoint):
    data = tiny_checkpoint.read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(data[: len(data) // 2])
    fails(capsys, tmp_path, ["--checkpoint", str(broken), "--format", "npz", "--out", str(tmp_path / "s.npz")], 1,
          "broken.pt", "truncated")


def test_checkpoint_whose_config_does_not_match_its_backbone(capsys, tmp_path, tiny_checkpoint):
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["config"]["backbone"]["base_channels"] = 16  # the stored weights are for 8
    other = tmp_path / "other.pt"
    torch.save(state, other)
    fails(capsys, tmp_path, ["--checkpoint", str(other), "--format", "pngs", "--out", str(tmp_path / "pngs")], 1,
          "does not match backbone 'unet'")


def test_unknown_sampler_suggests_and_lists_installed(capsys, tmp_path, tiny_checkpoint):
    err = fails(capsys, tmp_path, ["--checkpoint", str(tiny_checkpoint), "--sampler", "dpm-solver",
                                   "--out", str(tmp_path / "s.png")], 2,
                "--sampler 'dpm-solver': no such sampler", 'did you mean "dpm-solver++"', "installed: ")
    for name in ("ddim", "ddpm", "dpm-solver++"):
        assert name in err


def test_eta_for_a_sampler_without_eta(capsys, tmp_path, tiny_checkpoint):
    fails(capsys, tmp_path, ["--checkpoint", str(tiny_checkpoint), "--sampler", "dpm-solver++", "--eta", "0.5",
                             "--out", str(tmp_path / "s.png")], 2, "has no eta parameter", "ddim")


def test_more_steps_than_the_schedule_has(capsys, tmp_path, tiny_checkpoint):
    fails(capsys, tmp_path, ["--checkpoint", str(tiny_checkpoint), "--steps", "51", "--progression",
                             str(tmp_path / "p.gif"), "--out", str(tmp_path / "s.png")], 2,
          "--steps 51 is more than the schedule's 50 timesteps")


def test_bad_eta_value_is_refused_by_the_sampler(capsys, tmp_path, tiny_checkpoint):
    fails(capsys, tmp_path, ["--checkpoint", str(tiny_checkpoint), "--sampler", "ddim", "--eta", "-1",
                             "--out", str(tmp_path / "s.png")], 2, "eta")


@pytest.mark.parametrize("args, fragments", [
    (["--set", "spacing"], ["--set 'spacing'", "expected KEY=VALUE"]),
    (["--set", "name=ddim"], ["choose the sampler with --sampler ddim"]),
    (["--sampler", "ddpm", "--set", "spacing=trailing"], ["unknown key 'spacing'", "variance"]),
    (["--sampler", "ddim", "--set", "spacing=middle"], ["spacing = 'middle'", "leading, trailing, linspace"]),
    (["--set", "clip_x0=maybe"], ["clip_x0"]),
], ids=["no value", "name", "key of another sampler", "bad value", "bad type"])
def test_bad_sampler_options_are_refused(capsys, tmp_path, tiny_checkpoint, args, fragments):
    fails(capsys, tmp_path, ["--checkpoint", str(tiny_checkpoint), *args, "--out", str(tmp_path / "s.png")], 2,
          *fragments)


@pytest.mark.parametrize("option", ["--out", "--progression", "--strip"])
def test_output_paths_that_cannot_be_written_are_refused_before_sampling(capsys, tmp_path, tiny_checkpoint,
                                                                         monkeypatch, option):
    import workbench.sampling.generate as sampling

    def must_not_run(*args, **kwargs):
        raise AssertionError("sampling started before the output paths were checked")

    monkeypatch.setattr(sampling, "generate", must_not_run)
    suffix = {"--out": ".png", "--progression": ".gif", "--strip": ".png"}[option]
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("x")
    others = [] if option == "--out" else ["--out", str(tmp_path / "s.png")]
    for bad, why in [(tmp_path / "missing" / f"x{suffix}", "does not exist"),
                     (a_file / f"x{suffix}", "is not a folder"),
                     (tmp_path / "x.jpeg", f"must end in {suffix}")]:
        fails(capsys, tmp_path, ["--checkpoint", str(tiny_checkpoint), *others, option, str(bad)], 2, why)


def test_pngs_into_a_folder_that_is_not_empty(capsys, tmp_path, tiny_checkpoint):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.png").write_bytes(b"")
    fails(capsys, tmp_path, ["--checkpoint", str(tiny_checkpoint), "--format", "pngs", "--out",
                             str(tmp_path / "full")], 2, "not empty")
    assert os.listdir(tmp_path / "full") == ["keep.png"]


def interrupt_sampling_at_step_2(monkeypatch) -> None:
    """Make the next sampling run raise KeyboardInterrupt (a Ctrl-C) at its third sampler step."""
    import workbench.sampling.generate as sampling

    real_generate = sampling.generate

    def interrupted(*args, **kwargs):
        def on_step(step):
            if step.index == 2:
                raise KeyboardInterrupt
        return real_generate(*args, **{**kwargs, "on_step": on_step})

    monkeypatch.setattr(sampling, "generate", interrupted)


def test_ctrl_c_during_sampling_leaves_nothing_behind(capsys, tmp_path, tiny_checkpoint, monkeypatch):
    interrupt_sampling_at_step_2(monkeypatch)
    before = listing(tmp_path)
    code = main(["sample", "-q", "--checkpoint", str(tiny_checkpoint), "--format", "pngs", "--out",
                 str(tmp_path / "pngs"), "--progression", str(tmp_path / "p.gif"), "--strip", str(tmp_path / "s.png")])
    assert code == 130
    assert capsys.readouterr().err == "interrupted\n"
    assert listing(tmp_path) == before


def test_an_existing_output_file_is_replaced_only_when_sampling_succeeds(capsys, tmp_path, tiny_checkpoint):
    target = tmp_path / "s.png"
    target.write_bytes(b"old")
    fails(capsys, tmp_path, ["--checkpoint", str(tiny_checkpoint), "--steps", "99", "--out", str(target)], 2)
    assert target.read_bytes() == b"old"
    assert main(["sample", "-q", "--checkpoint", str(tiny_checkpoint), "--n", "1", "--out", str(target)]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("command", ["sample", "forward"])
@pytest.mark.parametrize("seed", ["-1", "2**63", "9223372036854775808", "1.5"])
def test_seeds_out_of_range_are_refused_when_the_arguments_are_read(capsys, in_tmp_cwd, tiny_checkpoint, monkeypatch,
                                                                    command, seed):
    import workbench.sampling.seeding as seeding

    def must_not_run(*args, **kwargs):
        raise AssertionError("the seed reached the seeding")

    monkeypatch.setattr(seeding.np.random, "SeedSequence", must_not_run)
    args = ["--checkpoint", str(tiny_checkpoint)] if command == "sample" else ["--set", "dataset.name=synthetic"]
    assert main([command, *args, "--seed", seed, "--out", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: ddpm-workbench {command}: argument --seed: {seed!r} is not a whole number from 0 to "
                   f"2**63-1 (see ddpm-workbench {command} --help)\n")
    assert os.listdir(in_tmp_cwd) == []


def test_the_largest_seed_works(capsys, tmp_path, tiny_checkpoint):
    assert main(["sample", "-q", "--checkpoint", str(tiny_checkpoint), "--n", "1", "--seed", str(2**63 - 1),
                 "--out", str(tmp_path / "s.png")]) == 0
    assert f"seed {2**63 - 1}," in capsys.readouterr().out


def test_pngs_into_the_current_folder(capsys, in_tmp_cwd, tiny_checkpoint):
    """`--out .` in an empty folder used to crash after sampling (the folder cannot be replaced)."""
    assert main(["sample", "-q", "--checkpoint", str(tiny_checkpoint), "--n", "2", "--format", "pngs",
                 "--out", "."]) == 0
    assert capsys.readouterr().out.startswith("wrote .: 2 images")
    assert sorted(os.listdir(in_tmp_cwd)) == ["000000.png", "000001.png"]


def test_pngs_into_a_link_to_an_empty_folder_keep_the_link_and_the_folder(capsys, tmp_path, tiny_checkpoint):
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    target.chmod(0o700)
    inode = target.stat().st_ino
    (tmp_path / "link").symlink_to(target)
    assert main(["sample", "-q", "--checkpoint", str(tiny_checkpoint), "--n", "2", "--format", "pngs",
                 "--out", str(tmp_path / "link")]) == 0
    capsys.readouterr()
    assert (tmp_path / "link").is_symlink()
    assert sorted(os.listdir(target)) == ["000000.png", "000001.png"]
    assert target.stat().st_ino == inode and target.stat().st_mode & 0o777 == 0o700  # the same folder, as it was
    assert sorted(os.listdir(tmp_path)) == ["link", "target"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_pngs_into_an_empty_folder_whose_parent_is_read_only(capsys, tmp_path, tiny_checkpoint):
    parent = tmp_path / "parent"
    (parent / "out").mkdir(parents=True)
    parent.chmod(0o555)
    try:
        assert main(["sample", "-q", "--checkpoint", str(tiny_checkpoint), "--n", "2", "--format", "pngs",
                     "--out", str(parent / "out")]) == 0
        assert sorted(os.listdir(parent / "out")) == ["000000.png", "000001.png"]
    finally:
        parent.chmod(0o755)


def test_pngs_into_a_link_to_nowhere_is_refused(capsys, tmp_path, tiny_checkpoint):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    fails(capsys, tmp_path, ["--checkpoint", str(tiny_checkpoint), "--format", "pngs", "--out",
                             str(tmp_path / "link")], 2, "which does not exist", "create that folder first")


def test_ctrl_c_while_sampling_into_an_existing_folder_leaves_it_empty(capsys, tmp_path, tiny_checkpoint,
                                                                       monkeypatch):
    interrupt_sampling_at_step_2(monkeypatch)
    (tmp_path / "out").mkdir()
    assert main(["sample", "-q", "--checkpoint", str(tiny_checkpoint), "--format", "pngs", "--out",
                 str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err == "interrupted\n"
    assert os.listdir(tmp_path) == ["out"] and os.listdir(tmp_path / "out") == []
