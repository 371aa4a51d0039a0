"""`ddpm-workbench import SOURCE`: a diffusers model (folder or Hugging Face Hub id) as a new run directory.

The UNet2DModel config maps to the unet backbone, the scheduler config to the schedule, prediction and
sampler settings (workbench.interop); what does not map is refused in one line before anything is written.
The module is `import_` because `import` is a Python keyword (see COMMAND_MODULES in workbench.cli).
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    from workbench.cli import add_runs_folder_arguments

    parser.add_argument("source", metavar="SOURCE",
                        help="a diffusers model folder (model_index.json with unet/ and scheduler/, or a UNet's "
                             "config.json + diffusion_pytorch_model.safetensors/.bin), or a Hub id such as "
                             "google/ddpm-cifar10-32")
    parser.add_argument("--name", default="", metavar="NAME",
                        help="run directory name (default: the folder or model name)")
    add_runs_folder_arguments(parser)


def run(args) -> int:
    from workbench.cli import runs_folder
    from workbench.interop.runs import import_model

    run_dir = import_model(args.source, name=args.name, base_dir=runs_folder(args))
    status = run_dir.read_status()
    print(f"imported {args.source} into {run_dir.path} ({status.get('imported', {}).get('weights', '')})")
    print(f"sample from it: ddpm-workbench sample --run {run_dir.path}")
    return 0
