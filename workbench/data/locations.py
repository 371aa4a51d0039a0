"""Where datasets are looked for before anything is downloaded.

The order (documented in docs/datasets.md) is: the dataset's `root` param, the folders in
$DDPM_WORKBENCH_DATA, the user cache ($XDG_CACHE_HOME/ddpm-workbench or ~/.cache/ddpm-workbench), then the
system dataset folders (/usr/share/datasets, where Debian's dataset-* packages install). Downloads go to
`root` when it is set, else to the cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "DDPM_WORKBENCH_DATA"
CACHE_NAME = "ddpm-workbench"
# Folders that hold one sub-folder per dataset, as Debian's dataset-fashion-mnist does
# (/usr/share/datasets/fashion-mnist/*.gz). Tests replace this tuple.
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/local/share/datasets"), Path("/usr/share/datasets"))


@dataclass(frozen=True)
class SearchPlace:
    """One place to look: `label` names it in messages; `path` is None when it is not configured."""

    label: str
    path: Path | None


def cache_dir() -> Path:
    """The per-user cache folder for downloads: $XDG_CACHE_HOME/ddpm-workbench or ~/.cache/ddpm-workbench."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / CACHE_NAME


def search_places(root: str = "") -> list[SearchPlace]:
    """Every place to look for a dataset, in order. Unset places are included (path None) so that an
    error message can say they were not configured."""
    places = [SearchPlace("dataset.root", Path(root).expanduser() if root else None)]
    env = [p for p in os.environ.get(DATA_ENV, "").split(os.pathsep) if p.strip()]
    if env:
        places += [SearchPlace(f"${DATA_ENV}", Path(p).expanduser()) for p in env]
    else:
        places.append(SearchPlace(f"${DATA_ENV}", None))
    places.append(SearchPlace("cache", cache_dir()))
    places += [SearchPlace("system", p) for p in SYSTEM_DATA_DIRS]
    return places


def describe_places(places: list[SearchPlace]) -> str:
    """'dataset.root (not set), $DDPM_WORKBENCH_DATA (not set), cache /root/.cache/ddpm-workbench, ...'"""
    parts = []
    for place in places:
        if place.path is None:
            parts.append(f"{place.label} (not set)")
        elif place.label in ("cache", "system"):
            parts.append(str(place.path))
        else:
            parts.append(f"{place.label}={place.path}")
    return ", ".join(parts)


def download_dir(root: str = "") -> Path:
    """Where a download goes: the configured root, else the cache."""
    return Path(root).expanduser() if root else cache_dir()
