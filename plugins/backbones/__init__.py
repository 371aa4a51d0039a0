"""Built-in backbones (placeholder: the backbones work replaces this module)."""

from workbench.plugin_host import hookimpl


def _pending(in_channels, out_channels, image_size, **params):
    raise NotImplementedError("backbones land with the backbones work")


@hookimpl
def register_backbones(register):
    register("unet", _pending, params={"preset": "tiny"}, description="U-Net")
