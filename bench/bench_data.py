"""How fast the data path itself delivers training batches (no model): images/s from `next_batch`.

    python bench/bench_data.py [--batch-size 128] [--seconds 3] [--folder-images 2048] [--workers N]

Measures, on the CPU:
- in-memory: the default dataset (Fashion-MNIST, full or the embedded sample) gathered, flipped and scaled
  from one uint8 tensor, as on the training device;
- streaming: a temporary folder of 32x32 PNGs read through DataLoader workers (image-folder with
  max_memory_mb = 0), the path used for folders too large for memory.
Also prints how long building each dataset took. Figures, not assertions: run it on the machine you care about.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from workbench.config import load_config
from workbench.data import build_dataset


def measure(batches, batch_size: int, seconds: float, repeats: int = 3) -> float:
    """Images per second from next_batch: the median of `repeats` timed spans, after one warm-up batch
    (worker start-up is not counted). The median keeps a busy shared machine from deciding the figure."""
    batches.next_batch(batch_size)
    rates = []
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / repeats:
            x, _ = batches.next_batch(batch_size)
            count += x.shape[0]
        x.sum().item()  # make sure the last batch really exists (a no-op on the CPU, a sync on a GPU)
        rates.append(count / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def build(overrides: list[str], device: str):
    start = time.perf_counter()
    batches = build_dataset(load_config(None, overrides, search_cwd=False).dataset, device=device)
    return batches, time.perf_counter() - start


def write_folder(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description="images/s of the data path")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--folder-images", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=-1, help="DataLoader workers for streaming; -1 = auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"batch {args.batch_size}")

    for overrides in (["dataset.flip=true"], ["dataset.name=synthetic", "dataset.channels=3", "dataset.flip=true"]):
        batches, seconds = build(overrides, args.device)
        rate = measure(batches, args.batch_size, args.seconds)
        print(f"in-memory  {rate:>12,.0f} images/s  {batches.channels}x{batches.image_size}x{batches.image_size}  "
              f"(built in {seconds:.2f} s: {batches.description})")

    with tempfile.TemporaryDirectory() as tmp:
        write_folder(Path(tmp), args.folder_images)
        batches, seconds = build(["dataset.name=image-folder", f"dataset.path={tmp}", "dataset.max_memory_mb=0",
                                  f"dataset.workers={args.workers}", "dataset.flip=true"], args.device)
        try:
            rate = measure(batches, args.batch_size, args.seconds)
        finally:
            batches.close()
        print(f"streaming  {rate:>12,.0f} images/s  3x32x32 PNG, {batches.num_workers} workers "
              f"(built in {seconds:.2f} s: {batches.description})")
        batches, seconds = build(["dataset.name=image-folder", f"dataset.path={tmp}"], args.device)
        print(f"folder load into memory: {args.folder_images} PNGs in {seconds:.2f} s "
              f"({args.folder_images / seconds:,.0f} images/s decode)")


if __name__ == "__main__":
    main()
