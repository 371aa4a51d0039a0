"""Train the feature classifier shipped as plugins/fashion_mnist_classifier_v1.safetensors.

It learns the 10 Fashion-MNIST classes from the real training split (60,000 images, padded to 32x32 as the
engine pads them) for a few epochs with AdamW and a one-cycle learning rate, measures its accuracy on the
10,000 test images, and writes float32 weights with the accuracy, epochs and seed in the file's metadata.
Deterministic for a given seed and thread count; about 8 minutes on one CPU thread shared with other work.

    OMP_NUM_THREADS=1 python tools/train_feature_classifier.py [--source /usr/share/datasets/fashion-mnist]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from workbench.evaluation.classifier import VERSION, WEIGHTS_NAME, GarmentClassifier, to_input

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def load_split(source: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from workbench_plugins.datasets import fashion_mnist

    data = fashion_mnist(root=source, split=split, sample_fallback=False)
    return data.images, data.labels


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    hits = sum(int((model(to_input(images[i:i + 1000])).argmax(1) == labels[i:i + 1000]).sum())
               for i in range(0, len(images), 1000))
    return hits / len(images)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist", help="folder of the IDX files")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=PLUGINS / WEIGHTS_NAME)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    images, labels = load_split(args.source, "train")
    test_images, test_labels = load_split(args.source, "test")
    model = GarmentClassifier()
    steps = args.epochs * ((len(images) + args.batch_size - 1) // args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        for i in range(0, len(order), args.batch_size):
            batch = order[i:i + args.batch_size]
            loss = nn.functional.cross_entropy(model(to_input(images[batch])), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, "
              f"test accuracy {accuracy(model, test_images, test_labels):.2%}, "
              f"{time.perf_counter() - started:.0f} s", flush=True)

    from safetensors.torch import save_file

    test_accuracy = accuracy(model, test_images, test_labels)
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    metadata = {"version": VERSION, "test_accuracy": f"{test_accuracy:.4f}", "epochs": str(args.epochs),
                "seed": str(args.seed), "trained_on": "Fashion-MNIST train (60,000 images, padded to 32x32)"}
    save_file(state, str(args.out), metadata=metadata)
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {size / 1024:.0f} KiB, {sum(v.numel() for v in state.values()):,} parameters, "
          f"test accuracy {test_accuracy:.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
