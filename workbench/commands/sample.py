"""`ddpm-workbench sample`: images from a trained run or checkpoint, as a PNG grid, PNG files or an .npz.

Everything the user can get wrong is checked before sampling starts (run/checkpoint, sampler, --eta,
--steps, every output path), and outputs appear whole at the end or not at all (workbench.sampling.outputs).
"""

from __future__ import annotations

import argparse
import math
import time


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


N_MAX = 1_000_000  # images per command: 1 GiB of 32x32 RGB uint8 held in memory before writing
BATCH_SIZE_MAX = 4096  # images per batch: beyond any device's memory at these image sizes
LARGE_WORK = 1_000_000  # image-steps above which the command says what it is about to do


def bounded_int(maximum: int, hint: str):
    """An argparse type: a whole number 1 .. maximum."""
    def parse(text: str) -> int:
        value = positive_int(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{text!r} is more than {maximum:,} ({hint})")
        return value
    parse.__name__ = "whole number"
    return parse


def announce_large_job(n: int, steps: int, batch_size: int, image_shape, quiet: bool) -> None:
    """For a big request, one line on stderr before the work: model calls, memory and disk it will need."""
    import sys

    work = n * steps
    if work < LARGE_WORK or quiet:
        return
    megabytes = n * math.prod(image_shape) / 2**20  # uint8 in memory, and about that much on disk (npz/PNG)
    calls = math.ceil(n / batch_size) * steps
    print(f"note: {n:,} images x {steps} steps = {calls:,} model calls of up to {batch_size} images; "
          f"about {megabytes:,.0f} MiB in memory and on disk (Ctrl-C stops it, nothing is written)",
          file=sys.stderr)


def seed_int(text: str) -> int:
    """--seed: a whole number 0 .. 2**63-1, the range of run.seed (argparse type, so a bad one is refused
    before any work)."""
    from workbench.config import SEED_MAX

    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to 2**63-1")
    return value


def guidance_scale(text: str) -> float:
    """--guidance: a number >= 0 (argparse type, so a bad one is refused before any work)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number >= 0 (1 = plain conditional, 0 = "
                                         "unconditional, above 1 = stronger class)")
    return value


def plural(count: int, word: str) -> str:
    """'1 image', '2 images'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def rate_text(count: int, seconds: float) -> str:
    """count/seconds with one decimal, or two significant digits when that would read 0.0."""
    rate = count / max(seconds, 1e-9)
    if rate >= 0.1:
        return f"{rate:.1f}"
    return f"{rate:.{1 - math.floor(math.log10(rate))}f}"


DEFAULT_PER_CLASS = 8  # images per class when several classes are asked for and --n is not given


def add_arguments(parser) -> None:
    from workbench.sampling.defaults import (DEFAULT_FRAMES, DEFAULT_PROGRESSION_IMAGES, DEFAULT_STRIP_COLUMNS,
                                           FORMATS, PRECISIONS)

    from workbench.cli import add_runs_folder_arguments

    source = parser.add_argument_group("model")
    source.add_argument("--run", metavar="RUN", help="a run: its name under --dir, a path to it, or 'latest'")
    source.add_argument("--checkpoint", metavar="FILE", help="a checkpoint file (.pt) instead of a run")
    source.add_argument("--best", action="store_true",
                        help="with --run: the checkpoint of its best sample-quality evaluation (train.keep_best)")
    add_runs_folder_arguments(source)
    source.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA weights")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--n", type=bounded_int(N_MAX, "split the job into several runs of sample"),
                          default=None, help=f"number of images, at most {N_MAX:,} (default: the run's sample.n)")
    sampling.add_argument("--sampler", metavar="NAME", help="ddpm, ddim, dpm-solver++, ... (default: the run's)")
    sampling.add_argument("--steps", type=positive_int, default=None,
                          help="sampler steps, at most the schedule's timesteps (default: the run's sample.steps)")
    sampling.add_argument("--eta", type=float, default=None,
                          help="the sampler's eta (DDIM: 0 deterministic, 1 DDPM-like); only for samplers with eta")
    sampling.add_argument("--set", dest="sample_set", action="append", default=[], metavar="KEY=VALUE",
                          help="any [sample] option of the sampler, e.g. --set spacing=trailing, "
                               "--set variance=fixed-large, --set dynamic_threshold=0.995 (repeatable)")
    sampling.add_argument("--seed", type=seed_int, default=0, help="0 to 2**63-1; image i of a seed is the same "
                          "picture at any batch size, with every sampler (default: 0)")
    sampling.add_argument("--batch-size", type=bounded_int(BATCH_SIZE_MAX, "no device holds more"), default=64,
                          help=f"images per batch, at most {BATCH_SIZE_MAX} (default: 64)")
    sampling.add_argument("--class", dest="classes", action="append", default=[], metavar="CLASS",
                          help="class-conditional models: sample this class, by name (sneaker) or index (7); "
                               "repeatable; 'all' = every class. The grid gets one row per class and --n "
                               f"counts images per class (default: the run's sample.n for one class, "
                               f"{DEFAULT_PER_CLASS} each for several)")
    sampling.add_argument("--label", dest="classes", action="append", help=argparse.SUPPRESS)  # older name
    sampling.add_argument("--guidance", type=guidance_scale, default=None, metavar="W",
                          help="classifier-free guidance scale: 1 = plain conditional, 0 = unconditional, "
                               "> 1 = stronger class, less variety (default: the run's sample.guidance)")
    sampling.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    sampling.add_argument("--precision", choices=PRECISIONS, default="auto",
                          help="network precision: auto = bf16 where training uses it (CUDA, CPUs with AMX), "
                               "else fp32; fp32 gives the same images at any batch size")
    output = parser.add_argument_group("output")
    output.add_argument("--format", choices=FORMATS, default="grid",
                        help="grid: one PNG; pngs: a folder of PNGs; npz: uint8 (N, H, W, C) 'arr_0' for metric tools")
    output.add_argument("--out", "-o", metavar="PATH",
                        help="output path (default: samples.png, samples/ or samples.npz by --format)")
    output.add_argument("--nrow", type=positive_int, default=None, help="images per grid row (default: square)")
    output.add_argument("--progression", metavar="GIF", help="also write an animated GIF of x_t and predicted x0 "
                        "over the reverse process")
    output.add_argument("--strip", metavar="PNG", help="also write the denoising progression as a PNG strip")
    output.add_argument("--frames", type=positive_int, default=DEFAULT_FRAMES,
                        help=f"GIF frames: evenly spaced steps, plus the final image (default: {DEFAULT_FRAMES})")
    output.add_argument("--progression-images", type=positive_int, default=DEFAULT_PROGRESSION_IMAGES,
                        help=f"samples shown in the GIF and strip (default: {DEFAULT_PROGRESSION_IMAGES})")
    output.add_argument("--strip-columns", type=positive_int, default=DEFAULT_STRIP_COLUMNS,
                        help=f"columns of the strip (default: {DEFAULT_STRIP_COLUMNS})")
    output.add_argument("--scale", type=positive_int, default=None,
                        help="enlarge GIF and strip pixels by this factor (default: 2 for 32 px images)")
    output.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def check_source(args) -> None:
    from workbench.errors import UsageError

    if args.run and args.checkpoint:
        raise UsageError("give either --run or --checkpoint, not both")
    if not args.run and not args.checkpoint:
        raise UsageError("say what to sample from: --run RUN (a run name under --dir, a path, or 'latest') "
                         "or --checkpoint FILE")
    if args.best and not args.run:
        raise UsageError("--best picks a run's best checkpoint: give --run RUN with it")


def check_sampler(args):
    """The sampler component named by --sampler (None: the run's), with --eta checked against it."""
    from workbench.errors import UsageError, did_you_mean
    from workbench.plugin_host import get_host

    registry = get_host().registries["sampler"]
    if args.sampler is None:
        return None
    if args.sampler not in registry:
        raise UsageError(f"--sampler {args.sampler!r}: no such sampler{did_you_mean(args.sampler, registry.names())}; "
                         f"installed: {', '.join(registry.names())}")
    component = registry.get(args.sampler)
    check_eta(args, component)
    return component


def check_eta(args, component) -> None:
    from workbench.errors import UsageError
    from workbench.plugin_host import get_host

    if args.eta is not None and "eta" not in component.params:
        with_eta = [c.name for c in get_host().registries["sampler"] if "eta" in c.params]
        raise UsageError(f"--eta: sampler {component.name!r} has no eta parameter; samplers with eta: "
                         f"{', '.join(with_eta) or 'none installed'}")


def sample_section_for(args, cfg):
    """The run's [sample] section with --sampler/--steps/--eta applied, validated like a config file."""
    from workbench.config import resolve
    from workbench.errors import ConfigError, UsageError
    from workbench.plugin_host import get_host

    stored = cfg.as_dict()["sample"]
    name = args.sampler or stored["name"]
    component = get_host().registries["sampler"].get(name, section="sample")
    check_eta(args, component)
    # The stored plugin keys belong to the stored sampler; a different sampler starts from its defaults.
    table = dict(stored) if name == stored["name"] else {k: stored[k] for k in ("n", "steps", "clip_x0",
                                                                                  "dynamic_threshold")}
    table["name"] = name
    table.update(parse_sample_sets(args.sample_set))
    if args.steps is not None:
        table["steps"] = args.steps
    if args.eta is not None:
        table["eta"] = args.eta
    timesteps = cfg.schedule.timesteps
    if table["steps"] > timesteps:
        raise UsageError(f"--steps {table['steps']} is more than the schedule's {timesteps} timesteps; "
                         f"use --steps {timesteps} or fewer")
    raw = cfg.as_dict()
    raw["sample"] = table
    try:
        return resolve(raw, source=cfg.source).sample
    except ConfigError as exc:
        raise UsageError(f"sampler options: {exc}") from None


def parse_sample_sets(items: list[str]) -> dict:
    """--set KEY=VALUE (KEY may also be written sample.KEY) as a dict; values parse like config --set."""
    from workbench.config import parse_value
    from workbench.errors import UsageError

    table = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("sample.")
        if not sep or not key or "." in key:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE for a [sample] option, e.g. --set spacing=trailing")
        if key == "name":
            raise UsageError(f"--set {item!r}: choose the sampler with --sampler {value.strip() or 'NAME'}")
        table[key] = parse_value(value.strip())
    return table


def reserve_outputs(args, plan) -> dict:
    from workbench.sampling.defaults import DEFAULT_OUT, SUFFIXES

    out = args.out or DEFAULT_OUT[args.format]
    reserved = {}
    if args.format == "pngs":
        reserved["out"] = plan.folder(out, option="--out")
    else:
        reserved["out"] = plan.file(out, suffixes=SUFFIXES[args.format], option="--out")
    if args.progression:
        reserved["progression"] = plan.file(args.progression, suffixes=(".gif",), option="--progression")
    if args.strip:
        reserved["strip"] = plan.file(args.strip, suffixes=(".png",), option="--strip")
    return reserved


def progress_bar(quiet: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), disable=quiet, transient=False)


def write_outputs(args, reserved, result, recorder, image_size: int, rows: list[str] | None = None) -> None:
    """`rows`: the class name of each grid row (class mode: one row per class), else a plain grid."""
    from workbench.pictures import png_bytes
    from workbench.sampling import formats, progression
    from workbench.sampling.layout import labelled_grid

    out = reserved["out"]
    if args.format == "grid" and rows:
        out.write_bytes(png_bytes(labelled_grid(result.images, len(result.images) // len(rows), row_labels=rows)))
    elif args.format == "grid":
        out.write_bytes(formats.grid_png(result.images, args.nrow))
    elif args.format == "pngs":
        labels = result.labels.tolist() if result.labels is not None else [None] * len(result.images)
        for i, (image, label) in enumerate(zip(result.images, labels)):
            out.write_bytes(formats.png_name(i, len(result.images), label), formats.image_png(image))
    else:
        out.write_with(formats.npz_writer(result.images, result.labels))
    if recorder is not None:
        frames = recorder.finish(result.images)
        scale = args.scale or progression.default_scale(image_size)
        if "progression" in reserved:
            reserved["progression"].write_bytes(progression.gif_bytes(frames, scale))
        if "strip" in reserved:
            reserved["strip"].write_bytes(png_bytes(progression.strip_picture(frames, args.strip_columns, scale)))


def run(args) -> int:
    from workbench.cli import runs_folder, warn_plugin_failures
    from workbench.diffusion import build_sampler
    from workbench.sampling.outputs import OutputPlan
    from workbench.sampling.progression import ProgressionRecorder
    from workbench.sampling.generate import SampleSettings, class_count, generate, resolve_device
    from workbench.sampling.classes import class_name
    from workbench.sampling.model import load_for_sampling, sampling_dtype

    check_source(args)
    warn_plugin_failures()
    check_sampler(args)
    device = resolve_device(args.device)
    sampling_dtype(args.precision, device)  # a GPU without bf16 is refused here, before any output exists
    with OutputPlan() as plan:
        reserved = reserve_outputs(args, plan)
        bundle = load_for_sampling(run=args.run, checkpoint=args.checkpoint, base_dir=runs_folder(args),
                                   best=args.best, ema=not args.no_ema, device=device)
        section = sample_section_for(args, bundle.cfg)
        sampler = build_sampler(section)
        classes = chosen_classes(args, bundle)
        guidance = chosen_guidance(args, bundle)
        if classes:
            per_class = args.n or (bundle.cfg.sample.n if len(classes) == 1 else DEFAULT_PER_CLASS)
            labels = tuple(c for c in classes for _ in range(per_class))
        else:
            labels = None
        n = len(labels) if labels else args.n or bundle.cfg.sample.n
        settings = SampleSettings(n=n, steps=section.steps, seed=args.seed, batch_size=min(args.batch_size, n),
                                  clip_x0=section.clip_x0, dynamic_threshold=section.dynamic_threshold,
                                  labels=labels, guidance=guidance, precision=args.precision)
        announce_large_job(n, settings.steps, settings.batch_size,
                           (bundle.channels, bundle.image_size, bundle.image_size), args.quiet)
        recorder = None
        if args.progression or args.strip:
            recorder = ProgressionRecorder(args.frames, min(args.progression_images, n, settings.batch_size))
        started = time.perf_counter()
        with progress_bar(args.quiet) as progress:
            images_task = progress.add_task("images", total=n)
            steps_task = progress.add_task(f"{section.name} steps", total=settings.steps)

            def on_batch(done: int, total: int) -> None:
                progress.update(images_task, completed=done)
                if done < total:
                    progress.reset(steps_task)

            result = generate(bundle, sampler, settings, device=device,
                              on_step=lambda step: progress.advance(steps_task), on_batch=on_batch,
                              first_batch_callback=recorder)
        seconds = time.perf_counter() - started
        rows = [class_name(c, bundle.class_names) for c in classes] if classes else None
        write_outputs(args, reserved, result, recorder, bundle.image_size, rows)
    options = "".join(f", {key} {value}" for key, value in section.params.items())  # eta, spacing, variance...
    if class_count(bundle.cfg):
        shown = ", ".join(class_name(c, bundle.class_names) for c in classes) if classes else "all classes"
        options += f", {shown}, guidance {guidance:g}"
    weights = "EMA" if bundle.ema else "raw"
    written = ", ".join(str(r.path) for r in reserved.values())
    print(f"wrote {written}: {plural(n, 'image')}, {section.name} {plural(section.steps, 'step')}{options}, "
          f"seed {args.seed}, {weights} weights of step {bundle.step} ({bundle.checkpoint_path}), "
          f"{rate_text(n, seconds)} images/s on {device}")
    return 0


def chosen_classes(args, bundle) -> list[int]:
    """The classes of --class (names or indices, 'all'), checked against the model; [] when not given."""
    from workbench.sampling.classes import class_indices
    from workbench.sampling.generate import class_count

    if not args.classes:
        return []
    return class_indices(args.classes, class_count(bundle.cfg), bundle.class_names)


def chosen_guidance(args, bundle) -> float:
    """--guidance, else the run's sample.guidance; W != 1 needs a class-conditional model, and warns when its
    unconditional branch was never trained (train.label_dropout = 0)."""
    import sys

    from workbench.errors import UsageError
    from workbench.sampling.generate import class_count

    cfg = bundle.cfg
    if not class_count(cfg):
        if args.guidance is not None and args.guidance != 1.0:
            raise UsageError(f"--guidance {args.guidance:g}: this model is not class-conditional "
                             "(backbone.num_classes is 0); guidance needs one trained with --set "
                             "backbone.num_classes=auto --set train.label_dropout=0.1")
        return 1.0
    scale = float(cfg.sample.guidance if args.guidance is None else args.guidance)
    if scale != 1.0 and not cfg.train.label_dropout:
        given = f"--guidance {scale:g}" if args.guidance is not None else f"the run's sample.guidance = {scale:g}"
        print(f"warning: {given}: this model was trained without label dropout (train.label_dropout = 0), so "
              "its unconditional branch was never trained and guided samples may be poor; train with --set "
              "train.label_dropout=0.1", file=sys.stderr)
    return scale
