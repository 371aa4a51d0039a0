"""What the TUI costs a training run: img/s of a headless run against the same run watched by the TUI.

    python bench/bench_tui.py                  # tiny synthetic runs, 2 rounds, alternating order
    python bench/bench_tui.py --steps 200 --rounds 3 --set backbone.preset=tiny

Both runs start the engine the same way (its own process, as the TUI launches it); the watched run has the
whole app running headless in this process (`App.run_test`, 160x48) with the real watcher thread and
redraws, and presses a key every second to time key handling while training runs. img/s is the median of
the engine's own per-log-window figures, the first window (warm-up) left out. The target is at most 3%
overhead and keys handled within 100 ms. On a shared machine repeat it: the noise between rounds is
printed too. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from workbench.config import load_config

TINY_RUN = [
    "dataset.name=synthetic", "dataset.count=256", "dataset.size=16", "backbone.preset=tiny",
    "backbone.base_channels=16", "train.batch_size=16", "train.log_every=5", "train.sample_every=0", "train.checkpoint_every=0",
    "train.warmup_steps=5", "sample.steps=5", "sample.n=4",
]


def median_img_per_s(run_path: Path) -> tuple[float, int]:
    rows = [json.loads(line) for line in (run_path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    values = [r["img_per_s"] for r in rows[1:] if r.get("img_per_s", 0) > 0]
    return (statistics.median(values) if values else float("nan")), len(values)


def headless(config) -> Path:
    from workbench.tui.launcher import launch_engine

    run, process = launch_engine(config)
    code = process.wait()
    if code != 0:
        sys.exit(f"headless run failed with exit code {code}; see {run.path / 'train.log'}")
    return run.path


async def watched(config, press_keys: bool = True) -> tuple[Path, list[float], list[float], float]:
    """Run with the app watching; returns (run path, key dispatch latencies, screen switch times, CPU share)."""
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.plugins_screen import PluginsScreen

    app = WorkbenchApp(config, run_now=True)
    dispatch: list[float] = []
    switch: list[float] = []
    pressed = [0.0]
    original = app.action_show_plugins

    def stamped_action() -> None:  # when the key's action starts: the event loop was free to handle it
        dispatch.append(time.perf_counter() - pressed[0])
        original()

    app.action_show_plugins = stamped_action
    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with app.run_test(size=(160, 48)) as pilot:
        while app.model is None or app.model.is_live:
            await pilot.pause(1.0)
            if app.model is None or app.model.metrics is None or not press_keys:
                continue
            pressed[0] = time.perf_counter()
            await pilot.press("i")  # open the plugins screen...
            while not isinstance(app.screen, PluginsScreen):
                await asyncio.sleep(0.001)
            switch.append(time.perf_counter() - pressed[0])
            await pilot.press("escape")  # ...and back to the run view
        if app.model.failure:
            sys.exit(f"watched run failed: {app.model.failure}")
        cpu_share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        return Path(app.model.path), dispatch, switch, cpu_share


def describe_ms(name: str, values: list[float]) -> str:
    ms = sorted(1000 * x for x in values)
    return f"{name}: n={len(ms)}, median {statistics.median(ms):.0f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.0f} ms, " \
           f"max {ms[-1]:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--no-keys", action="store_true", help="only watch: press no keys during the TUI runs")
    parser.add_argument("--runs-dir", default=None, help="where the runs go (default: a new temporary folder)")
    args = parser.parse_args()
    runs_dir = args.runs_dir or tempfile.mkdtemp(prefix="bench-tui-")
    config = load_config(None, TINY_RUN + [f"train.steps={args.steps}", f"run.dir={runs_dir}"] + args.overrides)
    results: dict[str, list[float]] = {"headless": [], "tui": []}
    dispatch: list[float] = []
    switch: list[float] = []
    cpu_shares: list[float] = []
    for round_ in range(args.rounds):
        order = ("headless", "tui") if round_ % 2 == 0 else ("tui", "headless")
        for mode in order:
            if mode == "headless":
                path = headless(config)
            else:
                path, keys, screens, cpu_share = asyncio.run(watched(config, press_keys=not args.no_keys))
                dispatch.extend(keys)
                switch.extend(screens)
                cpu_shares.append(cpu_share)
            img_s, windows = median_img_per_s(path)
            results[mode].append(img_s)
            print(f"round {round_ + 1} {mode:8s}: {img_s:8.1f} img/s (median of {windows} log windows) {path}",
                  flush=True)
    head, tui = statistics.mean(results["headless"]), statistics.mean(results["tui"])
    spread = max(results["headless"]) - min(results["headless"]) if len(results["headless"]) > 1 else 0.0
    print(f"headless : {head:8.1f} img/s (spread between rounds {spread:.1f})")
    print(f"with TUI : {tui:8.1f} img/s")
    print(f"overhead : {100 * (head - tui) / head:+.1f}% (target: at most 3%)")
    print(f"TUI process CPU while watching: {100 * statistics.mean(cpu_shares):.1f}% of one core "
          f"(app, watcher thread and test driver together{'' if args.no_keys else ', a screen switch a second'})")
    if dispatch:
        print(describe_ms("key -> action start (target: within 100 ms)", dispatch))
        print(describe_ms("key -> new screen shown", switch))


if __name__ == "__main__":
    main()
