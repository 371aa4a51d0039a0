"""Sample quality of a Fashion-MNIST run: Frechet distance (FID's formula) in the feature space of a small
Fashion-MNIST classifier, against the held-out test split, for one or more samplers.

    python bench/bench_quality.py --run latest                              # the run's own sampler
    python bench/bench_quality.py --run latest --sampler ddpm:100 ddim:50 dpm-solver++:20 --n 2000

Why not FID itself: its Inception network needs a download (there is no network here) and was trained on
photographs, not 28x28 garments. The classifier (five convolutions, 90% test accuracy after two epochs on
the 60,000 training images padded to 32x32 as the engine pads them) is trained on first use and cached
(about 8 minutes on two busy CPU cores); its 256-d penultimate layer is the feature. Samples come from
`ddpm-workbench sample --format npz`, exactly what a user gets. Also printed: the distance of as many
*real* training images (the floor at this n, i.e. the estimator's bias), and per sampler the mean top-class
probability (how garment-like single images are, as Inception Score's first factor) and the entropy of the
predicted class histogram (diversity; ln 10 = 2.303 is all ten classes equally often). Lower distance is
better; compare only at the same n. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ddpm-workbench"


def fashion_mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 1, 32, 32), padded with black as training pads them, and labels."""
    from workbench.data import pad_images
    from workbench_plugins.datasets import fashion_mnist as load

    source = load(split=split, sample_fallback=False)
    return pad_images(source.images, 32), source.labels


def to_input(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, 32), *block(32, 32), nn.MaxPool2d(2),        # 16x16
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),       # 8x8
            *block(64, 128), nn.MaxPool2d(2), nn.Flatten(),        # 4x4
            nn.Linear(128 * 16, 256), nn.ReLU())
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def classifier() -> Classifier:
    """The feature network, trained once (two epochs) and cached."""
    path = CACHE / "fashion-mnist-classifier-v1.pt"
    model = Classifier()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    print(f"training the feature classifier (cached at {path}) ...", flush=True)
    images, labels = fashion_mnist("train")
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for epoch in range(2):
        order = torch.randperm(len(images), generator=generator)
        for i in range(0, len(order), 128):
            batch = order[i:i + 128]
            loss = nn.functional.cross_entropy(model(to_input(images[batch])), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    test_images, test_labels = fashion_mnist("test")
    accuracy = (predict(model, test_images)[1].argmax(1) == test_labels).float().mean().item()
    print(f"feature classifier: {accuracy:.1%} test accuracy", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


@torch.no_grad()
def predict(model: Classifier, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(features float64 (N, 256), class probabilities (N, 10)) of uint8 images (N, 1, 32, 32)."""
    feats, probs = [], []
    for i in range(0, len(images), 500):
        f = model.features(to_input(images[i:i + 500]))
        feats.append(f.double())
        probs.append(model.head(f).softmax(1))
    return torch.cat(feats), torch.cat(probs)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al. 2017), in float64."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(s_a)
    root_a = (v * w.clamp(min=0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root_a @ s_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + s_a.trace() + s_b.trace() - 2 * cross)


def describe(probs: torch.Tensor) -> str:
    histogram = probs.argmax(1).bincount(minlength=10).double() / len(probs)
    entropy = -(histogram * histogram.clamp(min=1e-12).log()).sum()
    return f"confidence {probs.max(1).values.mean():.3f}  class entropy {entropy:.3f}"


def generate(run: str, spec: str, n: int, seed: int, out: Path) -> float:
    """`ddpm-workbench sample` into an npz; spec is "name" or "name:steps". Returns the seconds it took."""
    name, _, steps = spec.partition(":")
    command = [sys.executable, "-m", "workbench", "sample", "--run", run, "--n", str(n), "--seed", str(seed),
               "--batch-size", "250", "--format", "npz", "--out", str(out), "--quiet"]
    if name:
        command += ["--sampler", name]
    if steps:
        command += ["--steps", steps]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="latest", help="run name, path or 'latest' (under ./runs)")
    parser.add_argument("--sampler", nargs="*", default=[""], metavar="NAME[:STEPS]",
                        help="samplers to score (default: the run's own)")
    parser.add_argument("--n", type=int, default=1000, help="samples per sampler (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", nargs="*", default=[], metavar="NPZ",
                        help="score existing npz files (arr_0 uint8 (N, H, W, 1)) instead of sampling")
    parser.add_argument("--keep", metavar="DIR", help="write the sampled npz files here (default: discard them)")
    args = parser.parse_args()

    model = classifier()
    test_images, _ = fashion_mnist("test")
    test_features, test_probs = predict(model, test_images)
    train_images, _ = fashion_mnist("train")
    pick = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(1))[:args.n]
    real_features, real_probs = predict(model, train_images[pick])
    print(f"{'real training images':34s} n={args.n:5d}  distance {frechet_distance(real_features, test_features):8.3f}"
          f"  {describe(real_probs)}  (the floor at this n)", flush=True)

    def score(label: str, path: Path, seconds: float | None) -> None:
        images = torch.from_numpy(np.load(path)["arr_0"]).permute(0, 3, 1, 2).contiguous()
        if images.shape[1:] != (1, 32, 32):
            print(f"{label}: images of shape {tuple(images.shape[1:])}, expected (1, 32, 32)")
            return
        features, probs = predict(model, images)
        took = f"  ({seconds:.0f} s to sample)" if seconds is not None else ""
        print(f"{label:34s} n={len(images):5d}  distance {frechet_distance(features, test_features):8.3f}"
              f"  {describe(probs)}{took}", flush=True)

    for path in args.samples:
        score(path, Path(path), None)
    if args.samples:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.sampler:
            out = Path(args.keep or tmp) / f"samples-{spec.replace(':', '-') or 'default'}.npz"
            seconds = generate(args.run, spec, args.n, args.seed, out)
            score(spec or "the run's sampler", out, seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
