"""Fixed stand-in plugins for snapshot tests: the setup view's choices and notes must not change whenever a
real plugin's description or parameters do. They register the default names with fixed text; nothing here
can build anything."""

from workbench.plugin_host import hookimpl


def _never(*args, **kwargs):
    raise AssertionError("snapshot plugins are for display only")


@hookimpl
def register_schedules(register):
    register("linear", _never, params={"beta_start": 1e-4, "beta_end": 0.02}, description="linear betas",
             reference="Ho et al. 2020")
    register("cosine", _never, params={"s": 0.008}, description="cosine alpha-bar", reference="Nichol & Dhariwal 2021")


@hookimpl
def register_datasets(register):
    register("fashion-mnist", _never, params={"root": ""}, description="Fashion-MNIST garments, 28x28 grayscale",
             reference="Xiao et al. 2017")
    register("synthetic", _never, params={"count": 512}, description="procedurally drawn shapes")


@hookimpl
def register_backbones(register):
    register("unet", _never, params={"preset": "tiny", "num_classes": None},
             description="U-Net; presets: tiny, ddpm-cifar10",
             reference="Ho et al. 2020")


@hookimpl
def register_samplers(register):
    register("ddim", _never, params={"eta": 0.0}, description="DDIM", reference="Song et al. 2021")
    register("ddpm", _never, params={}, description="ancestral sampling", reference="Ho et al. 2020")
    register("dpm-solver++", _never, params={}, description="DPM-Solver++(2M)", reference="Lu et al. 2022")
