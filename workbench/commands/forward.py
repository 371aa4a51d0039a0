"""`ddpm-workbench forward`: see what a noise schedule does to real images before training on it."""

from __future__ import annotations


def add_arguments(parser) -> None:
    from workbench.cli import add_config_arguments
    from workbench.commands.sample import positive_int, seed_int

    add_config_arguments(parser)
    parser.add_argument("--timesteps", metavar="T,T,...",
                        help="comma-separated timesteps 0..T-1 (default: 0,100,250,500,750,999 scaled to T)")
    parser.add_argument("--schedules", metavar="NAME,NAME,...",
                        help="compare these schedules, one block each (default: the configured [schedule])")
    parser.add_argument("--n", type=positive_int, default=4, help="dataset images, one row each (default: 4)")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the noise, 0 to 2**63-1 (default: 0)")
    parser.add_argument("--out", "-o", default="forward.png", metavar="PNG", help="output file (default: forward.png)")
    parser.add_argument("--scale", type=positive_int, default=None,
                        help="enlarge pixels by this factor (default: 2 for 32 px images)")


def parse_timesteps(text: str | None, timesteps: int) -> list[int]:
    from workbench.errors import UsageError
    from workbench.sampling.forward import default_timesteps

    if text is None:
        return default_timesteps(timesteps)
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise UsageError(f"--timesteps {text!r}: {part!r} is not a whole number; e.g. --timesteps 0,250,999") from None
        if not 0 <= value < timesteps:
            raise UsageError(f"--timesteps: {value} is outside 0..{timesteps - 1} (the schedule has {timesteps} "
                             "timesteps; set schedule.timesteps to change that)")
        values.append(value)
    return values


def schedule_configs(cfg, names_text: str | None) -> list:
    """One validated config per schedule to show: the configured one keeps its own params, others use
    their defaults; all share schedule.timesteps and schedule.zero_terminal_snr."""
    from workbench.config import resolve
    from workbench.errors import UsageError, did_you_mean
    from workbench.plugin_host import get_host

    if not names_text:
        return [cfg]
    registry = get_host().registries["schedule"]
    names = [n.strip() for n in names_text.split(",") if n.strip()]
    if not names:
        raise UsageError("--schedules is empty; e.g. --schedules linear,cosine")
    configs = []
    for name in names:
        if name not in registry:
            raise UsageError(f"--schedules: no schedule {name!r}{did_you_mean(name, registry.names())}; "
                             f"installed: {', '.join(registry.names())}")
        raw = cfg.as_dict()
        if name != cfg.schedule.name:
            raw["schedule"] = {"name": name, "timesteps": cfg.schedule.timesteps,
                               "zero_terminal_snr": cfg.schedule.zero_terminal_snr}
        configs.append(resolve(raw, source=cfg.source))
    return configs


def block_title(cfg) -> str:
    params = ", ".join(f"{k}={v}" for k, v in cfg.schedule.params.items())
    zero = ", zero terminal SNR" if cfg.schedule.zero_terminal_snr else ""
    return f"{cfg.schedule.name} (T={cfg.schedule.timesteps}{', ' + params if params else ''}{zero})"


def run(args) -> int:
    from workbench.cli import load_config_from_args
    from workbench.commands.sample import plural
    from workbench.data import build_dataset
    from workbench.diffusion import GaussianDiffusion
    from workbench.pictures import png_bytes
    from workbench.sampling.forward import forward_block, forward_strip
    from workbench.sampling.outputs import OutputPlan
    from workbench.sampling.progression import default_scale
    from workbench.sampling.seeding import starting_noise

    cfg = load_config_from_args(args)
    timesteps = parse_timesteps(args.timesteps, cfg.schedule.timesteps)
    configs = schedule_configs(cfg, args.schedules)
    with OutputPlan() as plan:
        out = plan.file(args.out, suffixes=(".png",), option="--out")
        diffusions = [(block_title(c), GaussianDiffusion.from_config(c)) for c in configs]
        batches = build_dataset(cfg.dataset, device="cpu", seed=cfg.run.seed)
        try:
            images = batches.real_images(args.n)
        finally:
            batches.close()
        noise = starting_noise(args.seed, 0, images.shape[0], tuple(images.shape[1:]))
        scale = args.scale or default_scale(images.shape[-1])
        blocks = [forward_block(title, d, images, noise, timesteps, scale) for title, d in diffusions]
        out.write_bytes(png_bytes(forward_strip(blocks)))
    print(f"wrote {args.out}: {plural(images.shape[0], cfg.dataset.name + ' image')} at t = "
          f"{', '.join(map(str, timesteps))} under {', '.join(c.schedule.name for c in configs)}")
    return 0
