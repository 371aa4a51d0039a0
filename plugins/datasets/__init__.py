"""Built-in datasets (placeholder: the datasets work replaces this module)."""

from workbench.plugin_host import hookimpl


def _pending(**params):
    raise NotImplementedError("datasets land with the datasets work")


@hookimpl
def register_datasets(register):
    register("fashion-mnist", _pending, params={"root": ""}, description="Fashion-MNIST")
