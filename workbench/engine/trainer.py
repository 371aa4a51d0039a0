"""The training loop: DDPM training (Ho et al. 2020, Algorithm 1) with everything around it.

Reads top to bottom: `Trainer.run` joins torchrun's group if any, builds the components (workbench.engine.setup;
user errors surface here, before anything is written), opens the run directory, then `_loop` runs steps
until train.steps or a stop. Per step the host never waits for the device; it reads the metrics once per
log step (`_log`, the sync point), which is also where torchrun ranks agree on control commands.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from pathlib import Path

import torch

from workbench.diffusion import randn
from workbench.engine import distributed as dist_utils
from workbench.engine.checkpoint import load_checkpoint, save_run_checkpoint
from workbench.engine.control import ControlInbox
from workbench.engine.events import (CheckpointSaved, RunFailed, RunFinished, RunStarted, RunWarning,
                                     SamplesReady, StateChanged, StepMetrics)
from workbench.engine.grid import save_grid
from workbench.engine.metrics import (MetricWindow, Throughput, gpu_memory_peak, gpu_utilization, peak_flops)
from workbench.engine.optim import clip_gradients, lr_for_config, set_lr
from workbench.engine.previews import preview_grid
from workbench.engine.publish import Publisher
from workbench.engine.rundir import RunDirectory, check_training_target
from workbench.engine.setup import (build_components, check_resume_config, find_resume_point, load_weights,
                                    rank_rng_state, training_state)
from workbench.errors import NonFiniteSamples, UsageError, WorkbenchError

BAD_WINDOWS_BEFORE_RESTORE = 3
MAX_RESTORES = 3


class TrainingFailed(WorkbenchError):
    """Training started but could not go on; the run directory says what survives."""


class Trainer:
    def __init__(self, cfg, *, on_event=None, resume: str | None = None,
                 run_dir: RunDirectory | str | Path | None = None, stop_event: threading.Event | None = None):
        self.cfg, self.on_event, self.resume = cfg, on_event, resume
        self.run_dir_arg = run_dir
        self.stop_event = stop_event
        self.run: RunDirectory | None = None
        self.step = 0
        self.lr = 0.0
        self.stop_requested = False
        self.last_checkpoint: tuple[int, Path] | None = None
        self.last_sample_step = -1
        self.bad_windows = 0
        self.restores = 0
        self._last_log_step = 0

    # -- setup -------------------------------------------------------------------------------------

    def run_training(self) -> RunDirectory:
        ctx, device = dist_utils.init_distributed(self.cfg.run.device)
        try:
            return self._run(ctx, device)
        finally:
            dist_utils.shutdown(ctx)

    def _run(self, ctx, device) -> RunDirectory:
        cfg = self.cfg
        point = find_resume_point(self.resume, cfg.run.dir) if self.resume else None
        if point is not None:
            check_resume_config(cfg, point.state, point.checkpoint)
        check_training_target(self._given_run_dir(), point.run if point is not None else None)
        c = self.c = build_components(cfg, ctx, device, point.state if point else None)
        self.run = self._open_run_dir(point, ctx)
        self.pub = Publisher(self.run, self.on_event, enabled=ctx.is_main)
        self.step = self._last_log_step = c.start_step
        self.window = MetricWindow(device, c.diffusion.num_timesteps)
        self.elapsed_before = 0.0
        if point is not None:
            self.last_checkpoint = (c.start_step, point.checkpoint)
            self.last_sample_step = c.start_step
            self.elapsed_before = float(point.state.get("elapsed_s", 0.0))
            if point.state.get("metric_window") is not None:
                self.window.load_state_dict(point.state["metric_window"])
        try:
            self._start(point)
            self._loop()
            self._finish()
        except KeyboardInterrupt:
            self._fail("aborted by a second Ctrl-C; the steps since the last checkpoint are lost")
            raise
        except TrainingFailed as exc:
            self._fail(str(exc))
            raise
        except SystemExit as exc:  # sys.exit() inside a backbone's forward or a sampler's step: a failure
            from workbench.plugin_host.manager import plugin_in_traceback

            who = plugin_in_traceback(exc.__traceback__) or "plugin code"
            raise TrainingFailed(self._fail(f"{who} called sys.exit({exc.code!r})")) from None
        except WorkbenchError as exc:
            raise TrainingFailed(self._fail(str(exc))) from exc
        except torch.OutOfMemoryError as exc:
            message = (f"out of memory at step {self.step} with {c.micro_batch} images per micro-batch on "
                       f"{device}; lower train.batch_size, raise train.grad_accum or use a smaller backbone.preset")
            raise TrainingFailed(self._fail(message)) from exc
        except Exception as exc:
            where = self._write_traceback()
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise TrainingFailed(self._fail(f"{type(exc).__name__}: {first}{where}")) from exc
        finally:
            self.pub.close()
        return self.run

    def _given_run_dir(self) -> RunDirectory | None:
        arg = self.run_dir_arg
        return None if arg is None else arg if isinstance(arg, RunDirectory) else RunDirectory(arg)

    def _open_run_dir(self, point, ctx) -> RunDirectory:
        run = None
        if ctx.is_main:
            run = self._given_run_dir() or (point.run if point is not None else None)
            if run is None:
                run = RunDirectory.create(self.cfg.run.dir, self.cfg.run.name)
            try:
                for sub in (run.path, run.samples_dir, run.checkpoints_dir, run.control_dir):
                    sub.mkdir(parents=True, exist_ok=True)
                run.write_config(f"# resolved config of this run (from {self.cfg.source})\n" + self.cfg.to_toml())
                if point is not None:  # what a killed earlier process left: its temporaries, the steps to replay
                    run.remove_stale_temporaries()
                    run.trim_metrics_after(int(point.state["step"]))
            except OSError as exc:
                raise UsageError(f"cannot write to run directory {str(run.path)!r}: {exc.strerror or exc}; "
                                 "choose a writable folder (run.dir, or --run-dir)") from None
            run.take_control()  # commands left from an earlier process are stale
        if ctx.enabled:
            box = [str(run.path) if run else None]
            torch.distributed.broadcast_object_list(box, src=0)
            run = run or RunDirectory(box[0])
        return run

    def _start(self, point) -> None:
        c, cfg = self.c, self.cfg
        device_name = str(c.device)
        if c.device.type == "cuda":
            device_name += f" ({torch.cuda.get_device_name(c.device)})"
        preset = c.cfg.backbone.params.get("preset")
        backbone = f"{cfg.backbone.name}{f' ({preset})' if preset else ''}, {c.parameters / 1e6:.2f}M parameters"
        self._status("running", started_at=time.time(), device=device_name,
                     world_size=c.ctx.world_size, run_dir=str(self.run.path), message="")
        self.pub.emit(RunStarted(run_dir=str(self.run.path), total_steps=cfg.train.steps, start_step=c.start_step,
                                 device=device_name, dataset=c.data.description, backbone=backbone,
                                 parameters=c.parameters, flops_per_image=c.flops_per_image,
                                 world_size=c.ctx.world_size, image_shape=(c.channels, c.image_size, c.image_size)))
        if cfg.train.tensorboard:
            problem = self.pub.start_tensorboard(c.start_step)
            if problem:
                self._warn(problem)
        if c.precision.name == "fp16" and c.device.type == "cpu":
            self._warn("train.precision = \"fp16\" on a CPU is emulated and about 100x slower than float32; "
                       "use \"auto\" (bf16 where the CPU has AMX, else fp32)")
        if point is not None and c.start_step >= cfg.train.steps:
            self._warn(f"the run is already at step {c.start_step} of train.steps = {cfg.train.steps}; "
                       f"raise it to train longer, e.g. --set train.steps={2 * cfg.train.steps}")
        if point is not None and len(point.state.get("data_ranks") or []) != c.ctx.world_size:
            self._warn(f"the checkpoint was written by {point.state.get('world_size')} rank(s), this run has "
                       f"{c.ctx.world_size}; the data order starts afresh")
        self.inbox = ControlInbox(self.run, c.ctx, c.device, self.stop_event, agree_every=cfg.train.log_every)
        self.params = [p for p in c.model.parameters() if p.requires_grad]
        self.throughput = Throughput()
        self.session_start = time.perf_counter()

    # -- the loop ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        total = self.cfg.train.steps
        while self.step < total:
            self._handle_control(self.inbox.at_step(self.step))
            if self.stop_requested:
                break
            self._train_step()
            self.step += 1
            if self.c.ema is not None:
                self.c.ema.update(self.step - 1)
            if self.step % self.cfg.train.log_every == 0 or self.step == total:
                restores = self.restores
                self._log()
                if self.restores != restores:
                    continue  # went back to a checkpoint: nothing to sample or save at this step
            if self.cfg.train.sample_every and self.step % self.cfg.train.sample_every == 0:
                self._sample()
            if self.cfg.train.checkpoint_every and self.step % self.cfg.train.checkpoint_every == 0:
                self._checkpoint()

    def _train_step(self) -> None:
        c, train = self.c, self.cfg.train
        self.lr = lr_for_config(self.step, train)
        set_lr(c.optimizer, self.lr)
        c.optimizer.zero_grad(set_to_none=True)
        accum = train.grad_accum
        losses_seen, t_seen = [], []
        for micro in range(accum):
            x, y = c.data.next_batch(c.micro_batch)
            t, noise = self._draw_t_and_noise(x)
            if c.precision.channels_last:
                x, noise = x.contiguous(memory_format=torch.channels_last), noise.contiguous(memory_format=torch.channels_last)
            no_sync = c.ddp.no_sync() if c.ddp is not None and micro < accum - 1 else contextlib.nullcontext()
            with no_sync:
                with c.precision.autocast(c.device):
                    losses, t = c.diffusion.training_losses(
                        c.forward, x, t=t, noise=noise, weighting=train.loss_weighting,
                        min_snr_gamma=train.min_snr_gamma, model_kwargs={"y": y} if y is not None else None)
                    loss = losses.mean() / accum
                (c.scaler.scale(loss) if c.scaler is not None else loss).backward()
            losses_seen.append(losses.detach())
            t_seen.append(t)
        if c.scaler is not None:
            c.scaler.unscale_(c.optimizer)
        grad_norm = clip_gradients(self.params, train.grad_clip)
        losses_all = torch.cat(losses_seen) if accum > 1 else losses_seen[0]
        if c.scaler is not None:
            c.scaler.step(c.optimizer)  # skips the update itself when the scaled gradients overflowed
            c.scaler.update()
            finite = torch.isfinite(losses_all.sum())
        else:
            finite = torch.isfinite(grad_norm)  # equal on every rank: gradients are already all-reduced
            if c.fused:
                c.optimizer.found_inf = (~finite).float()  # the fused kernel skips the update on device
                try:
                    c.optimizer.step()
                finally:
                    del c.optimizer.found_inf
            elif bool(finite):  # a sync, but only on devices without a fused Adam
                c.optimizer.step()
        self.window.add_step(losses_all, torch.cat(t_seen) if accum > 1 else t_seen[0], grad_norm, finite)

    def _draw_t_and_noise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Timesteps and noise for this micro-batch. Every rank draws those of the whole global micro-batch
        from the same generator and keeps its own slice, so a torchrun job pairs sample i of the global
        batch with the same (t, noise) as a single process would."""
        c = self.c
        world, rank, micro = c.ctx.world_size, c.ctx.rank, c.micro_batch
        t = c.diffusion.sample_timesteps(micro * world, c.device, c.noise_generator)
        noise = randn((micro * world,) + tuple(x.shape[1:]), c.noise_generator, c.device)
        if world > 1:
            t, noise = t[rank * micro:(rank + 1) * micro], noise[rank * micro:(rank + 1) * micro]
        return t, noise

    # -- logging, samples, checkpoints -------------------------------------------------------------

    def _log(self) -> None:
        c = self.c
        world = c.ctx.world_size
        summary = self.window.read(reduce=(lambda v: dist_utils.all_reduce_sum(v, c.ctx)) if world > 1 else None)
        steps = self.step - self._last_log_step
        self._last_log_step = self.step
        it_per_s, img_per_s = self.throughput.lap(steps, steps * self.cfg.train.batch_size)
        peak = peak_flops(c.device)
        mfu = 3 * c.flops_per_image * img_per_s / (peak * world) if peak and c.flops_per_image else -1.0
        eta = self.throughput.eta(self.cfg.train.steps - self.step)
        elapsed = self.elapsed_before + time.perf_counter() - self.session_start
        event = StepMetrics(step=self.step, loss=summary.loss, lr=self.lr, grad_norm=summary.grad_norm,
                            it_per_s=it_per_s, img_per_s=img_per_s, elapsed_s=elapsed, eta_s=eta,
                            loss_quartiles=summary.loss_quartiles, gpu_mem_bytes=gpu_memory_peak(c.device),
                            gpu_util=gpu_utilization(c.device), mfu=mfu)
        self.pub.emit(event)
        self._status("running", step=self.step, loss=summary.loss, img_per_s=img_per_s, eta_s=eta)
        skipped = summary.nonfinite_steps // world
        if skipped:
            self._warn(f"{skipped} of the last {summary.steps // world} steps had a non-finite loss or gradient "
                       "and were skipped")
            self.bad_windows += 1
            if self.bad_windows >= BAD_WINDOWS_BEFORE_RESTORE:
                self._restore_last_good(f"non-finite losses in {self.bad_windows} log windows in a row")
        else:
            self.bad_windows = 0

    def _sample(self) -> None:
        c = self.c
        self.last_sample_step = self.step
        if not c.ctx.is_main:
            return
        started = time.perf_counter()
        try:
            grid = preview_grid(c)
        except NonFiniteSamples as exc:  # say so in the event log instead of saving a grey grid
            self._warn(f"{exc}; no sample grid saved at step {self.step}")
            self.throughput.exclude(time.perf_counter() - started)
            return
        path = self.run.sample_path(self.step)
        save_grid(grid, path)
        self.pub.emit(SamplesReady(step=self.step, path=str(path), image=grid))
        self._status(None, last_sample=str(path))
        self.throughput.exclude(time.perf_counter() - started)

    def _weights_finite(self) -> bool:
        norms = torch._foreach_norm([p.detach() for p in self.params])
        return bool(torch.isfinite(torch.stack(norms)).all())  # a sync: fine at checkpoint time

    def _checkpoint(self) -> None:
        c = self.c
        started = time.perf_counter()
        if not self._weights_finite():
            self._restore_last_good("the weights became non-finite")
            return
        data_ranks = self._gather(c.data.state_dict())
        rng_ranks = self._gather(rank_rng_state(c.device))
        path = self.run.latest_checkpoint
        if c.ctx.is_main:
            state = training_state(c, self.step, data_ranks=data_ranks, rng_ranks=rng_ranks,
                                   window=self.window.state_dict())
            state["elapsed_s"] = self.elapsed_before + time.perf_counter() - self.session_start
            path = save_run_checkpoint(self.run.checkpoints_dir, self.step, state, self.cfg.train.keep_checkpoints)
            self.pub.emit(CheckpointSaved(step=self.step, path=str(path)))
            self._status(None, last_checkpoint=str(path), checkpoint_step=self.step)
        self.last_checkpoint = (self.step, path)
        self.throughput.exclude(time.perf_counter() - started)

    def _gather(self, obj) -> list:
        if not self.c.ctx.enabled:
            return [obj]
        out = [None] * self.c.ctx.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def _restore_last_good(self, why: str) -> None:
        """Go back to the last checkpoint (weights, EMA, optimizer, scaler, step) instead of writing a broken
        one; the data order and noise go on, so the same batches are not replayed."""
        c = self.c
        self.restores += 1
        if self.last_checkpoint is None or self.restores > MAX_RESTORES:
            raise TrainingFailed(f"{why} and {'no checkpoint to go back to' if self.last_checkpoint is None else f'{MAX_RESTORES} restores did not help'}; "
                                 "lower train.lr, raise train.warmup_steps or use train.precision = \"fp32\"")
        step, _ = self.last_checkpoint
        state = load_checkpoint(self.run.latest_checkpoint, map_location=c.device)
        load_weights(state, c.model, c.ema, c.optimizer, c.scaler)
        if c.scaler is not None:
            c.scaler.update(new_scale=c.scaler.get_scale() / 2.0)
        self.window.values.zero_()
        self.step = self._last_log_step = int(state["step"])
        self.bad_windows = 0
        self._warn(f"{why}: restored the checkpoint of step {step} (data order goes on)")

    # -- control -----------------------------------------------------------------------------------

    def _handle_control(self, commands: list[str]) -> None:
        for command in commands:
            if command == "stop":
                if not self.stop_requested:
                    self.stop_requested = True
                    self.pub.emit(StateChanged("stopping", step=self.step))
                    self._status("stopping")
            elif command == "sample":
                self._sample()
            elif command == "checkpoint":
                self._checkpoint()
            elif command == "pause" and not self.stop_requested:
                self._pause()

    def _pause(self) -> None:
        started = time.perf_counter()
        self.pub.emit(StateChanged("paused", step=self.step))
        self._status("paused")
        while True:
            time.sleep(0.2)
            commands = self.inbox.while_paused()
            if "stop" in commands:
                self._handle_control(["stop"])
                break
            if "resume" in commands:
                break
            self._handle_control([c for c in commands if c in ("sample", "checkpoint")])
        if not self.stop_requested:
            self.pub.emit(StateChanged("resumed", step=self.step))
            self._status("running")
        self.throughput.exclude(time.perf_counter() - started)

    # -- ending ------------------------------------------------------------------------------------

    def _finish(self) -> None:
        stopped_early = self.step < self.cfg.train.steps
        if not stopped_early and self.last_sample_step != self.step:
            self._sample()
        # The checkpoint comes before the last (partial) log line, so it holds the unfinished metric window
        # and a resumed run logs exactly what an uninterrupted one would.
        if self.last_checkpoint is None or self.last_checkpoint[0] != self.step:
            self._checkpoint()
        if self._last_log_step != self.step:
            self._log()
        self.pub.emit(RunFinished(step=self.step, run_dir=str(self.run.path), stopped_early=stopped_early))
        self._status("stopped" if stopped_early else "finished", message="")

    def _kept(self) -> str:
        if self.last_checkpoint is not None:
            return f"checkpoint at step {self.last_checkpoint[0]}: {self.last_checkpoint[1]}"
        return f"no checkpoint yet; config, metrics and samples in {self.run.path}" if self.run else "nothing"

    def _fail(self, message: str) -> str:
        """Record the failure (event + status) and return the one-line message for the caller."""
        message = " ".join(message.split())
        kept = self._kept()
        if self.run is not None and self.c.ctx.is_main:
            try:
                self.pub.emit(RunFailed(message=message, kept=kept, step=self.step))
                self._status("failed", message=message, kept=kept)  # the same word as the event: attach agrees
            except Exception:  # noqa: BLE001 - a full disk must not hide the original error
                pass
        return f"training failed at step {self.step}: {message} (kept: {kept})"

    def _write_traceback(self) -> str:
        if self.run is None or not self.c.ctx.is_main:
            return ""
        try:
            (self.run.path / "traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
            return f" (traceback in {self.run.path / 'traceback.txt'})"
        except OSError:
            return ""

    def _warn(self, message: str) -> None:
        self.pub.emit(RunWarning(message, step=self.step))

    def _status(self, state: str | None, **fields) -> None:
        if self.run is None or not self.c.ctx.is_main:
            return
        state = state or self.run.read_status().get("state", "running")
        fields = {"step": self.step, "total_steps": self.cfg.train.steps, **fields}
        self.run.write_status(state, **fields)


def train(cfg, *, on_event=None, resume: str | None = None, run_dir: RunDirectory | str | Path | None = None,
          stop_event: threading.Event | None = None) -> RunDirectory:
    """Train `cfg` (a workbench.config.Config) and return its run directory.

    on_event(event): called on rank 0 with every event (see workbench.engine.events) as it happens.
    resume: a run name, path or "latest" to continue from its newest checkpoint, exactly.
    run_dir: write into this existing directory instead of creating one under run.dir.
    stop_event: set it (from any thread) to stop after the current step with a checkpoint.
    Raises WorkbenchError before anything is written for user errors, TrainingFailed afterwards."""
    return Trainer(cfg, on_event=on_event, resume=resume, run_dir=run_dir, stop_event=stop_event).run_training()
