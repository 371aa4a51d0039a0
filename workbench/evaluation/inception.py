"""The Inception-v3 pool3 features of published FIDs, through pytorch-fid.

The network is pytorch-fid's `InceptionV3` (the FID variant with the TF-ported weights that pytorch-fid,
torchmetrics and clean-fid share), resizing inputs bilinearly to 299x299 and scaling them to [-1, 1] as
pytorch-fid does; grayscale images are repeated to three channels. Weights, in order:
1. the file named by `--inception PATH` (the `weights` parameter) or $DDPM_WORKBENCH_INCEPTION;
2. pytorch-fid's own cache (torch hub's checkpoints folder), downloaded there on first use from the URL
   pytorch-fid uses.
Every file is read with `torch.load(weights_only=True)`: weights never load through code-running pickle.
A missing, truncated or wrong file is one line that says where to get the weights and where to put them.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import torch

from workbench.errors import WorkbenchError

WEIGHTS_ENV = "DDPM_WORKBENCH_INCEPTION"
FEATURE_DIM = 2048


class WeightsError(WorkbenchError):
    """Feature-extractor weights are missing, truncated or not the expected network's."""

    exit_code = 2


def weights_url() -> str:
    from pytorch_fid.inception import FID_WEIGHTS_URL

    return FID_WEIGHTS_URL


def cached_weights_path() -> Path:
    """Where pytorch-fid (torch hub) keeps the weights it downloads."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights_url().rsplit("/", 1)[-1]


def how_to_get() -> str:
    return (f"download {weights_url()} and put it at {cached_weights_path()}, or point --inception PATH "
            f"(or ${WEIGHTS_ENV}) at it")


def weights_path(given: str = "", *, download: bool = True) -> Path:
    """The weights file to use (see the module docstring); WeightsError when there is none."""
    given = given or os.environ.get(WEIGHTS_ENV, "").strip()
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise WeightsError(f"Inception weights {str(path)!r} not found; {how_to_get()}")
        return path
    path = cached_weights_path()
    if path.is_file():
        return path
    if not download:
        raise WeightsError(f"the FID Inception weights are not in {path}; {how_to_get()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(weights_url(), str(path), progress=True)
    except Exception as exc:  # noqa: BLE001 - any network or disk failure says the same thing
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"the FID Inception weights could not be downloaded ({reason}); {how_to_get()}") from None
    return path


def read_weights(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, not a torch file, a pickle with code in it
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"Inception weights {str(path)!r} cannot be read ({reason}): truncated or not a "
                           f"weights file; {how_to_get()}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"Inception weights {str(path)!r} do not hold a state dict of tensors; {how_to_get()}")
    return state


@contextmanager
def _weights_from(state: dict):
    """pytorch-fid builds its network and then loads the weights from its URL; hand it `state` instead,
    so the architecture and its strict `load_state_dict` stay pytorch-fid's own."""
    from pytorch_fid import inception as library

    original = library.load_state_dict_from_url
    library.load_state_dict_from_url = lambda *args, **kwargs: state
    try:
        yield library
    finally:
        library.load_state_dict_from_url = original


def fid_inception(path: Path) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 returning pool3 features, with the weights in `path`."""
    state = read_weights(path)
    with _weights_from(state) as library:
        try:
            network = library.InceptionV3([library.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]],
                                          resize_input=True, normalize_input=True)
        except RuntimeError as exc:  # missing/unexpected keys or shapes: another network's weights
            from workbench.sampling.model import describe_mismatch

            raise WeightsError(f"{str(path)!r} is not the FID Inception-v3 weights ({describe_mismatch(exc)}); "
                               f"{how_to_get()}") from None
    return network.eval()


class InceptionFeatures:
    """Inception-v3 pool3 (2048-d) features: the standard FID / KID feature space."""

    name = "inception"
    version = "pytorch-fid-0.3"
    dim = FEATURE_DIM
    frechet_label = "FID"
    kernel_label = "KID"

    def __init__(self, weights: str = ""):
        self.path = weights_path(weights)
        self.network = fid_inception(self.path)

    def refuse(self, channels: int, size: int) -> str | None:
        return None if channels in (1, 3) else "it takes grayscale or RGB images"

    def to(self, device) -> "InceptionFeatures":
        self.network.to(device)
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0  # pytorch-fid's input range is [0, 1]; the network rescales to [-1, 1]
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.network(x)[0].flatten(1)
