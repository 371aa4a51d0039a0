"""`ddpm-workbench eval`: FID / KID / precision-recall of samples against a reference set.

What is scored: `--samples` (an .npz from `sample --format npz`, or a folder of PNGs), or a run
(`--run`, `--checkpoint`, `--best`), sampled here with the run's sampler or `--sampler`/`--steps`. The
reference is the run's (or the configured) dataset, its split chosen with `--split` or `--set
dataset.split=test`, its statistics cached by identity; or `--reference` names a precomputed statistics
.npz (pytorch-fid / clean-fid's `mu`, `sigma`). Every printed line carries the metric, n and extractor.
Everything the user can get wrong is checked before any sampling or feature extraction starts.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def add_arguments(parser) -> None:
    from workbench.cli import add_config_arguments, add_runs_folder_arguments
    from workbench.commands.sample import positive_int, seed_int
    from workbench.evaluation.extractors import AUTO

    what = parser.add_argument_group("what to score (one of)")
    what.add_argument("--samples", metavar="PATH", help="an .npz of samples (uint8 (N, H, W, C) 'arr_0', as "
                      "`sample --format npz` writes) or a folder of PNGs")
    what.add_argument("--run", metavar="RUN", help="a run to sample: its name under --dir, a path, or 'latest'")
    what.add_argument("--checkpoint", metavar="FILE", help="a checkpoint file (.pt) to sample")
    what.add_argument("--best", action="store_true", help="with --run: its best checkpoint (train.keep_best)")
    add_runs_folder_arguments(what, config=False)
    sampling = parser.add_argument_group("sampling a run")
    sampling.add_argument("--n", type=positive_int, default=None,
                          help="samples to score (default: 10,000, or 1,000 on a CPU, at most the reference's size "
                               "and at least the feature dimension + 1; with --samples: all of them)")
    sampling.add_argument("--sampler", metavar="NAME", help="ddpm, ddim, dpm-solver++, ... (default: the run's)")
    sampling.add_argument("--steps", type=positive_int, default=None, help="sampler steps (default: the run's)")
    sampling.add_argument("--seed", type=seed_int, default=0, help="sampling seed (default: 0)")
    sampling.add_argument("--batch-size", type=positive_int, default=250, help="images per batch (default: 250)")
    sampling.add_argument("--no-ema", action="store_true", help="sample the raw weights, not the EMA weights")
    sampling.add_argument("--guidance", type=float, default=None, metavar="W",
                          help="class-conditional runs: classifier-free guidance scale (default: the run's "
                               "sample.guidance); Fashion-MNIST runs also get a class-adherence figure")
    sampling.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    sampling.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                          help="network precision while sampling (default: auto)")
    reference = parser.add_argument_group("reference")
    add_config_arguments(parser)
    reference.add_argument("--reference", metavar="NPZ", help="precomputed statistics (.npz with mu and sigma, "
                           "pytorch-fid / clean-fid format) instead of a dataset")
    reference.add_argument("--split", default=None, help="the reference dataset's split, e.g. train or test "
                           "(default: the dataset's configured split); same as --set dataset.split=SPLIT")
    reference.add_argument("--no-cache", action="store_true", help="recompute the reference statistics")
    reference.add_argument("--save-reference", metavar="NPZ", help="also write the reference statistics here")
    features = parser.add_argument_group("features")
    features.add_argument("--extractor", default=AUTO, help="feature extractor: auto (the shipped "
                          "fashion-classifier for grayscale images up to 32 px, else inception), inception, "
                          "fashion-classifier or a plugin's")
    features.add_argument("--inception", metavar="PATH", default="", help="the FID Inception weights file "
                          "(pt_inception-2015-12-05-6726825d.pth) for offline use; also $DDPM_WORKBENCH_INCEPTION")
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    output.add_argument("--quiet", "-q", action="store_true", help="no progress bars or notes")


def check_arguments(args) -> None:
    from workbench.errors import UsageError

    given = [name for name in ("samples", "run", "checkpoint") if getattr(args, name)]
    if len(given) != 1:
        raise UsageError("say what to score: --samples PATH (.npz or a PNG folder), --run RUN or --checkpoint FILE "
                         f"(one of them{'; got ' + ', '.join('--' + g for g in given) if given else ''})")
    if args.best and not args.run:
        raise UsageError("--best picks a run's best checkpoint: give --run RUN with it")
    if args.samples and (args.sampler or args.steps):
        raise UsageError("--sampler and --steps apply to sampling a run; --samples are already sampled")
    if args.reference and args.split:
        raise UsageError("--split chooses a dataset reference; --reference is a precomputed statistics file")


def reference_config(args, run_cfg):
    """The config whose [dataset] is the reference: the run's, or --config's (or the defaults), with --set
    and --split applied."""
    from workbench.cli import config_arguments
    from workbench.config import load_config
    from workbench.errors import ConfigError, UsageError

    path, overrides = config_arguments(args)
    if args.split:
        overrides.append(f"dataset.split={args.split}")
    try:
        return run_cfg.with_overrides(overrides) if run_cfg is not None else load_config(path, overrides)
    except ConfigError as exc:
        raise UsageError(f"reference dataset: {exc}") from None


class Progress:
    """A rich progress bar on stderr, or nothing with --quiet / --json."""

    def __init__(self, quiet: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

        self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True), disable=quiet, transient=True)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def task(self, description: str, total: int):
        task = self.bar.add_task(description, total=total)
        return lambda done, total: self.bar.update(task, completed=done, total=total)


def note(args, text: str) -> None:
    if not args.quiet:
        print(f"note: {text}", file=sys.stderr)


def warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def sample_run(args, bundle, n: int, device, progress) -> tuple:
    """n images of the bundle's model (through the sampling path shared with `sample`)."""
    from types import SimpleNamespace

    from workbench.commands.sample import sample_section_for
    from workbench.diffusion import build_sampler
    from workbench.sampling.generate import SampleSettings, generate

    options = SimpleNamespace(sampler=args.sampler, steps=args.steps, eta=None, sample_set=[])
    section = sample_section_for(options, bundle.cfg)
    sampler = build_sampler(section)
    guidance = args.guidance if args.guidance is not None else float(bundle.cfg.sample.guidance)
    if guidance < 0:
        from workbench.errors import UsageError

        raise UsageError(f"--guidance {guidance:g}: the scale must be >= 0 (1 = plain conditional, 0 = unconditional)")
    settings = SampleSettings(n=n, steps=section.steps, seed=args.seed, batch_size=min(args.batch_size, n),
                              clip_x0=section.clip_x0, dynamic_threshold=section.dynamic_threshold,
                              precision=args.precision, guidance=guidance)
    started = time.perf_counter()
    result = generate(bundle, sampler, settings, device=device, on_batch=progress.task(f"sampling ({section.name})", n))
    what = (f"{n} samples of step {bundle.step} ({'EMA' if bundle.ema else 'raw'} weights), {section.name} "
            f"{section.steps} steps, seed {args.seed}, {time.perf_counter() - started:.1f} s")
    if result.labels is not None:
        what += f", classes cycled, guidance {guidance:g}"
    return result.images, what, result.labels, guidance


def run(args) -> int:
    from workbench.cli import runs_folder, warn_plugin_failures
    from workbench.errors import UsageError
    from workbench.evaluation import evaluate as ev
    from workbench.evaluation.extractors import build_extractor, check_images_for, choose_extractor, extract_features
    from workbench.evaluation.inputs import load_images
    from workbench.evaluation.reference import dataset_reference, load_reference_npz, save_reference_npz
    from workbench.sampling.outputs import OutputPlan
    from workbench.sampling.generate import resolve_device
    from workbench.sampling.model import sampling_dtype

    check_arguments(args)
    warn_plugin_failures()
    device = resolve_device(args.device)
    with OutputPlan() as plan:
        saved = plan.file(args.save_reference, suffixes=(".npz",), option="--save-reference") if args.save_reference else None
        images, bundle, what, labels, guidance = None, None, "", None, None
        if args.samples:
            images = load_images(args.samples)
            if args.n is not None:
                if args.n > len(images):
                    raise UsageError(f"--n {args.n}: {args.samples!r} holds only {len(images)} images")
                images = images[:args.n]
            what = f"{len(images)} images from {args.samples}"
            channels, size = int(images.shape[1]), int(images.shape[2])
        else:
            from workbench.sampling.model import load_for_sampling

            sampling_dtype(args.precision, device)
            bundle = load_for_sampling(run=args.run, checkpoint=args.checkpoint, base_dir=runs_folder(args),
                                       best=args.best, ema=not args.no_ema, device=device)
            if args.sampler or args.steps:
                from types import SimpleNamespace

                from workbench.commands.sample import check_sampler, sample_section_for

                check_sampler(SimpleNamespace(sampler=args.sampler, eta=None))
                sample_section_for(SimpleNamespace(sampler=args.sampler, steps=args.steps, eta=None, sample_set=[]),
                                   bundle.cfg)
            channels, size = bundle.channels, bundle.image_size
        name = choose_extractor(args.extractor, channels, size)
        extractor = build_extractor(name, {"weights": args.inception})
        check_images_for(extractor, channels, size, "the samples")
        extractor.to(device)

        with Progress(args.quiet or args.json) as progress:
            if args.reference:
                reference = load_reference_npz(args.reference, extractor)
            else:
                cfg = reference_config(args, bundle.cfg if bundle is not None else None)
                reference = dataset_reference(cfg.dataset, extractor, device=device, use_cache=not args.no_cache,
                                              on_batch=progress.task("reference features", None),
                                              on_note=lambda text: note(args, text))
            ev.check_shapes(channels, size, reference)
            if images is None:
                default = ev.DEFAULT_N if device.type == "cuda" else ev.DEFAULT_N_CPU
                n = args.n or max(min(default, reference.stats.n), extractor.dim + 1)
                ev.check_sample_count(n, extractor)
                images, what, labels, guidance = sample_run(args, bundle, n, device, progress)
            ev.check_sample_count(len(images), extractor)
            started = time.perf_counter()
            features = extract_features(extractor, images, device=device,
                                        on_batch=progress.task("sample features", len(images)))
            extract_seconds = time.perf_counter() - started
            result = ev.score_features(features, reference, extractor, device=device)
            if labels is not None and bundle.cfg.dataset.name == "fashion-mnist":
                from workbench.evaluation.classifier import class_adherence
                from workbench.evaluation.extractors import build_extractor as build

                classifier = extractor if name == "fashion-classifier" else build("fashion-classifier", {}).to(device)
                result.class_adherence, result.guidance = class_adherence(images, labels, classifier), guidance
        if saved is not None:
            saved.write_with(lambda f: save_reference_npz(reference, f))

    if len(images) < ev.DEFAULT_N:
        result.notes.append(f"n={len(images)}: {ev.SMALL_N_WARNING}")
    if args.json:
        payload = result.as_dict() | {"samples": what, "feature_seconds": round(extract_seconds, 3),
                                      "device": str(device)}
        print(json.dumps(payload, indent=2))
    else:
        for text in result.notes:
            warn(text)
        note(args, f"scored {what}; features in {extract_seconds:.1f} s on {device}")
        for line in result.lines():
            print(line)
    return 0
