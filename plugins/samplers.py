"""Built-in samplers (placeholder: the diffusion-core work replaces this module)."""

from workbench.plugin_host import hookimpl


def _pending(**params):
    raise NotImplementedError("samplers land with the diffusion core")


@hookimpl
def register_samplers(register):
    register("ddim", _pending, params={"eta": 0.0}, description="DDIM", reference="Song et al. 2021")
