"""`ddpm-workbench export RUN --format diffusers OUT`: a run as a folder another library loads.

`--format diffusers` writes a DDPMPipeline folder (model_index.json, unet/ with safetensors weights,
scheduler/) that `diffusers.DDPMPipeline.from_pretrained(OUT)` loads; EMA weights unless --no-ema. What
UNet2DModel cannot express is refused in one line before anything is written (workbench.interop).
"""

from __future__ import annotations

FORMATS = ("diffusers",)


def add_arguments(parser) -> None:
    from workbench.cli import add_runs_folder_arguments

    parser.add_argument("run", metavar="RUN", help="a run: its name under --dir, a path to it, or 'latest'")
    parser.add_argument("out", metavar="OUT", help="the folder to write (must not exist, or be empty)")
    parser.add_argument("--format", choices=FORMATS, default="diffusers",
                        help="diffusers: a DDPMPipeline folder with safetensors weights (default)")
    parser.add_argument("--checkpoint", metavar="FILE", help="export this checkpoint file instead of the run's latest")
    add_runs_folder_arguments(parser)
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA weights")


def run(args) -> int:
    from workbench.cli import runs_folder
    from workbench.interop.runs import export_run

    out, which = export_run(run=args.run, checkpoint=args.checkpoint, base_dir=runs_folder(args), out=args.out,
                            ema=not args.no_ema)
    print(f"wrote {out}: a diffusers DDPMPipeline with the {which}")
    print(f"load it with diffusers.DDPMPipeline.from_pretrained({str(out)!r})")
    return 0
