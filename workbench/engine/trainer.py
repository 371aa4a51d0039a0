"""The training loop: DDPM training (Ho et al. 2020, Algorithm 1) with everything around it.

Reads top to bottom: `Trainer.run_training` joins torchrun's group if any, builds the run's one state object
(`TrainingRun`, workbench.engine.setup; user errors surface here, before anything is written), opens the run
directory, then `_loop` runs steps until train.steps or a stop, showing each decision (log, roll back,
sample, save) at its top level. Per step the host never waits for the device; it reads the metrics once per
log step (`_log`, the sync point), which is also where torchrun ranks agree on control commands.

With train.minutes the run's length comes from its measured speed (`_measure_length`, the rules in
workbench.engine.budget): once decided, the trainer swaps its config for one with train.steps = the decided
length and train.minutes = 0, rewrites the run's config.toml, and trains on as if configured so.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import traceback
from pathlib import Path

import torch

from workbench.diffusion import randn
from workbench.engine import distributed as dist_utils
from workbench.engine.budget import (STEADY_AFTER_STEPS, Overheads, decide_total_steps, eta_seconds,
                                     network_calls_per_grid, ready_to_decide)
from workbench.engine.checkpoint import (Progress, encode_training_state, load_checkpoint, rank_rng_state,
                                         restore_weights, save_checkpoint, save_run_checkpoint)
from workbench.engine.control import ControlInbox
from workbench.engine.events import (CheckpointSaved, LengthSet, QualityMeasured, RunFailed, RunFinished,
                                     RunStarted, RunWarning, SamplesReady, StateChanged, StepMetrics)
from workbench.engine.initial_weights import InitialWeights, read_initial_weights
from workbench.engine.metrics import Throughput, gpu_memory_peak, gpu_utilization, peak_flops, sync_device
from workbench.engine.optim import clip_gradients, lr_for_config, set_lr
from workbench.engine.previews import preview_call_seconds, preview_grid
from workbench.engine.publish import Publisher
from workbench.engine.rundir import RunDirectory, check_training_target
from workbench.engine.setup import TrainingRun, build_training_run, check_resume_config, find_resume_point
from workbench.errors import NonFiniteSamples, UsageError, WorkbenchError
from workbench.pictures import save_grid

# Measured factors for the warnings below (issue 17's report; a 2-core AMD EPYC with AVX2 and no AMX).
CPU_BF16_WITHOUT_AMX_SLOWDOWN = 4.5   # bf16 autocast vs fp32, tiny preset training step
CPU_FP16_SLOWDOWN = 4.6               # fp16 autocast + loss scaling vs fp32
CPU_COMPILE_MINUTES = 6               # torch.compile's first step, tiny preset


def slow_choices(train_cfg, precision, device) -> list[str]:
    """One line per setting known to be slower on this device than the default, with the measured factor."""
    from workbench.engine.setup import cpu_has_amx

    if device.type != "cpu":
        return []
    problems = []
    if precision.name == "bf16" and train_cfg.precision == "bf16" and not cpu_has_amx():
        problems.append(f"train.precision = \"bf16\" on a CPU without AMX is emulated: about "
                        f"{CPU_BF16_WITHOUT_AMX_SLOWDOWN}x slower than fp32 (measured on a 2-core AVX2 CPU); use "
                        "\"auto\" (fp32 here)")
    if precision.name == "fp16":
        problems.append(f"train.precision = \"fp16\" on a CPU is emulated: about {CPU_FP16_SLOWDOWN}x slower than "
                        "fp32 (measured on a 2-core AVX2 CPU); use \"auto\" (bf16 where the CPU has AMX, else fp32)")
    return problems


LENGTH_NOTE = "# train.minutes = "  # config.toml's comment line saying what set train.steps


def length_note(config_path: Path) -> str:
    """The "train.minutes = X set train.steps = N ..." note of a run's config.toml, without "# "; "" if none."""
    try:
        lines = config_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    return next((line[2:] for line in lines if line.startswith(LENGTH_NOTE)), "")


BAD_WINDOWS_BEFORE_RESTORE = 3
MAX_RESTORES = 3


class TrainingFailed(WorkbenchError):
    """Training started but could not go on; the run directory says what survives."""


class Trainer:
    """Runs one training job. Its state: `self.run` (the TrainingRun: model, optimizer, step, ...), and
    once the run directory is open, `self.run_dir`, `self.pub` (events), `self.inbox` (control commands),
    `self.throughput` (this process's speed) and `self.costs` (seconds of a preview, checkpoint, evaluation:
    measured, else estimated; for the ETA and train.minutes)."""

    def __init__(self, cfg, *, on_event=None, resume: str | None = None,
                 run_dir: RunDirectory | str | Path | None = None, stop_event: threading.Event | None = None,
                 init_from: str | InitialWeights | None = None, started: float | None = None):
        if resume and init_from:
            raise UsageError("--resume continues a run and --init-from starts a new one from its weights; "
                             "give one of them")
        self.cfg, self.on_event, self.resume, self.init_from = cfg, on_event, resume, init_from
        self.given_run_dir = run_dir
        self.stop_event = stop_event
        self.started = started  # time.perf_counter() when the run began (train.minutes counts from it)
        self.run: TrainingRun | None = None
        self.run_dir: RunDirectory | None = None

    # -- setup -------------------------------------------------------------------------------------

    def run_training(self) -> RunDirectory:
        if self.started is None:
            self.started = time.perf_counter()
        distributed, device = dist_utils.init_distributed(self.cfg.run.device)
        try:
            return self._run(distributed, device)
        finally:
            dist_utils.shutdown(distributed)

    def _run(self, distributed, device) -> RunDirectory:
        cfg = self.cfg
        point = find_resume_point(self.resume, cfg.run.dir) if self.resume else None
        if point is not None:
            check_resume_config(cfg, point.state, point.checkpoint)
        initial = self.init_from
        if isinstance(initial, str):
            initial = read_initial_weights(initial, cfg.run.dir)
        check_training_target(self._given_run_dir(), point.run if point is not None else None)
        run = self.run = build_training_run(cfg, distributed, device, point, initial)
        cfg = self.cfg = run.cfg  # the config as built (backbone.num_classes = "auto" is now a count)
        self.evaluator, self.eval_every, self.eval_note = self._quality_evaluator()
        self.run_dir = self._open_run_dir(point, distributed)
        self.pub = Publisher(self.run_dir, self.on_event, enabled=distributed.is_main)
        self.inbox = ControlInbox(self.run_dir, distributed, device, self.stop_event, agree_every=cfg.train.log_every)
        self.throughput = Throughput()
        self.compiling = False  # set in _start when train.compile: the first step compiles
        self.trained = 0        # steps this process has trained (the steady timing window starts after a few)
        self.paused_s = 0.0     # seconds paused (not part of train.minutes' budget)
        self.costs: dict[str, float] = {}  # "preview", "checkpoint", "evaluation": seconds, latest measured
        self.estimated: dict[str, float] = {}  # the same, estimated before one happened
        self.length_decided = False
        self.decision = (self.cfg.train.minutes, float("nan"))  # (minutes, s/step) rank 0 decided with
        try:
            self._start(point)
            self.session_start = time.perf_counter()
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
            message = (f"out of memory at step {run.step} with {run.micro_batch} images per micro-batch on "
                       f"{device}; lower train.batch_size, raise train.grad_accum or use a smaller backbone.preset")
            raise TrainingFailed(self._fail(message)) from exc
        except Exception as exc:
            where = self._write_traceback()
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise TrainingFailed(self._fail(f"{type(exc).__name__}: {first}{where}")) from exc
        finally:
            self.pub.close()
        return self.run_dir

    def _given_run_dir(self) -> RunDirectory | None:
        arg = self.given_run_dir
        return None if arg is None else arg if isinstance(arg, RunDirectory) else RunDirectory(arg)

    def _open_run_dir(self, point, distributed) -> RunDirectory:
        run_dir = None
        if distributed.is_main:
            run_dir = self._given_run_dir() or (point.run if point is not None else None)
            if run_dir is None:
                run_dir = RunDirectory.create(self.cfg.run.dir, self.cfg.run.name)
            try:
                for sub in (run_dir.path, run_dir.samples_dir, run_dir.checkpoints_dir, run_dir.control_dir):
                    sub.mkdir(parents=True, exist_ok=True)
                kept_note = length_note(run_dir.config_path) if point is not None and not self.cfg.train.minutes else ""
                run_dir.write_config(self._config_text(kept_note))
                if point is not None:  # what a killed earlier process left: its temporaries, the steps to replay
                    run_dir.remove_stale_temporaries()
                    run_dir.trim_metrics_after(int(point.state["step"]))
            except OSError as exc:
                raise UsageError(f"cannot write to run directory {str(run_dir.path)!r}: {exc.strerror or exc}; "
                                 "choose a writable folder (run.dir, or --run-dir)") from None
            run_dir.take_control()  # commands left from an earlier process are stale
        if distributed.enabled:
            box = [str(run_dir.path) if run_dir else None]
            torch.distributed.broadcast_object_list(box, src=0)
            run_dir = run_dir or RunDirectory(box[0])
        return run_dir

    def _config_text(self, note: str = "") -> str:
        """config.toml: the resolved config, under a comment saying where it came from (and `note`)."""
        return (f"# resolved config of this run (from {self.cfg.source})\n" + (f"# {note}\n" if note else "")
                + self.cfg.to_toml())

    def _start(self, point) -> None:
        run, cfg = self.run, self.cfg
        device_name = str(run.device)
        if run.device.type == "cuda":
            device_name += f" ({torch.cuda.get_device_name(run.device)})"
        preset = cfg.backbone.params.get("preset")
        backbone = f"{cfg.backbone.name}{f' ({preset})' if preset else ''}, {run.parameters / 1e6:.2f}M parameters"
        self.pub.emit(RunStarted(run_dir=str(self.run_dir.path), total_steps=cfg.train.steps, start_step=run.start_step,
                                 device=device_name, dataset=run.data.description, backbone=backbone,
                                 parameters=run.parameters, flops_per_image=run.flops_per_image,
                                 world_size=run.distributed.world_size,
                                 image_shape=(run.channels, run.image_size, run.image_size),
                                 minutes=cfg.train.minutes))
        if self.eval_note:
            self._warn(self.eval_note)
        if cfg.train.tensorboard:
            problem = self.pub.start_tensorboard(run.start_step)
            if problem:
                self._warn(problem)
        for problem in slow_choices(cfg.train, run.precision, run.device):
            self._warn(problem)
        self.compiling = bool(cfg.train.compile) and run.step < cfg.train.steps
        if self.compiling:
            self._warn("train.compile = true: compiling the model before the first step"
                       + (f" (a 2-core CPU took {CPU_COMPILE_MINUTES} minutes and then trained no faster than "
                          "eager)" if run.device.type == "cpu" else " (about a minute on a GPU)"))
        if point is not None and run.start_step >= cfg.train.steps:
            self._warn(f"the run is already at step {run.start_step} of train.steps = {cfg.train.steps}; "
                       f"raise it to train longer, e.g. --set train.steps={2 * cfg.train.steps}")
        conditional = run.sample_labels is not None
        if cfg.train.label_dropout > 0 and not conditional:
            self._warn(f"train.label_dropout = {cfg.train.label_dropout:g} does nothing: the backbone is not "
                       "class-conditional (set backbone.num_classes = \"auto\" to train one)")
        if conditional and cfg.sample.guidance != 1 and not cfg.train.label_dropout:
            self._warn(f"sample.guidance = {cfg.sample.guidance:g} with train.label_dropout = 0: the previews guide "
                       "with an unconditional branch that is never trained; set train.label_dropout = 0.1")
        written_by = Progress.of(point.state) if point is not None else None
        if written_by is not None and written_by.data_ranks != run.distributed.world_size:
            self._warn(f"the checkpoint was written by {written_by.world_size} rank(s), this run has "
                       f"{run.distributed.world_size}; the data order starts afresh")

    # -- the loop ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        run = self.run
        while run.step < self.cfg.train.steps:
            self._handle_control(self.inbox.at_step(run.step))
            agreed = self.inbox.take_length()  # torchrun: the length rank 0 decided, agreed by all ranks
            if agreed:
                self._set_length(agreed)  # at least one more step
            if run.stop_requested:
                break
            train = self.cfg.train  # a new config once train.minutes decided the length
            if self.compiling:
                self._compile_first_step()
            else:
                self._train_step()
            run.step += 1
            self.trained += 1
            if run.ema is not None:
                run.ema.update(run.step - 1)
            if run.step % train.log_every == 0 or run.step == train.steps:
                problem = self._log()
                if problem:
                    self._restore_last_good(problem)
                    continue  # back at a checkpoint: nothing to sample or save at this step
            if train.sample_every and run.step % train.sample_every == 0:
                self._sample()
            if self.eval_every and run.step % self.eval_every == 0:
                self._evaluate()  # and keep checkpoints/best.pt when it is the best so far
            if train.checkpoint_every and run.step % train.checkpoint_every == 0:
                self._checkpoint()  # rolls back instead when the weights became non-finite
            self._measure_length()

    # -- the run's length: train.minutes and the ETA -----------------------------------------------

    def _measure_length(self) -> None:
        """After each step: start the steady timing window after the first few steps, and with
        train.minutes decide the run's length once the window is long enough (rank 0; torchrun ranks
        switch at the next log step's agreement)."""
        run, train = self.run, self.cfg.train
        if self.trained == STEADY_AFTER_STEPS and self.throughput.steady_start is None:
            sync_device(self.run.device)  # once: the window starts when the device has done the steps before it
            self.throughput.mark_steady(self.trained)
        if not train.minutes or self.length_decided or run.step >= train.steps or not run.distributed.is_main:
            return
        steps, seconds = self.throughput.steady(self.trained)
        budget = 60.0 * train.minutes
        if not ready_to_decide(timed_steps=steps, timed_seconds=seconds, step=run.step,
                               warmup_steps=train.warmup_steps, elapsed_s=self._wall(), budget_s=budget):
            return
        sync_device(self.run.device)  # once: the host may run ahead of the device
        per_step = self.throughput.seconds_per_step(self.trained)
        if per_step is None:
            return
        overheads = self._overheads()
        total = decide_total_steps(budget_s=budget, elapsed_s=self._wall(), seconds_per_step=per_step,
                                   step=run.step, cap=train.steps, overheads=overheads)
        self.length_decided = True
        self.decision = (train.minutes, per_step)
        if run.distributed.enabled:
            self.inbox.propose_length(total)
        else:
            self._set_length(total)

    def _set_length(self, total: int) -> None:
        """Train `total` steps from now on (every rank, the same step): the config becomes that of a run
        configured with train.steps = total (the cosine schedule reads it) and train.minutes = 0; rank 0
        records it in config.toml (so checkpoints and --resume train to it) and publishes LengthSet."""
        from workbench.config import resolve

        run = self.run
        total = max(total, run.step + 1)
        minutes, per_step = self.decision
        raw = self.cfg.as_dict()
        raw["train"].update(steps=total, minutes=0.0)
        cfg = resolve(raw, source=self.cfg.source)
        self.cfg = run.cfg = cfg
        self.length_decided = True
        if self.eval_every and cfg.train.eval_every == -1:  # auto: 10 evaluations in the run as it now is
            self.eval_every = max(1, total // 10)
        if not run.distributed.is_main:
            return
        note = f"train.minutes = {minutes:g} set train.steps = {total} ({per_step:.3g} s/step measured)"
        self.run_dir.write_config(self._config_text(note))
        self.pub.emit(LengthSet(total_steps=total, minutes=minutes, seconds_per_step=per_step, step=run.step,
                                eta_s=self._eta(per_step)))

    def _overheads(self) -> Overheads:
        """Previews, checkpoints and evaluations of this run and their seconds each: the latest measured,
        else estimated once (`_estimate_costs`)."""
        if not {"preview", "checkpoint"} <= set(self.costs) and not self.estimated:
            self._estimate_costs()
        cost = lambda name: self.costs.get(name, self.estimated.get(name, 0.0))  # noqa: E731
        train = self.cfg.train
        return Overheads(sample_every=train.sample_every, preview_s=cost("preview"),
                         checkpoint_every=train.checkpoint_every, checkpoint_s=cost("checkpoint"),
                         eval_every=self.eval_every, evaluation_s=cost("evaluation"))

    def _estimate_costs(self) -> None:
        """What a preview, a checkpoint and an evaluation will cost, before one happened (rank 0; the time
        spent here is left out of img/s): a preview is one timed network call of the preview batch times the
        sampler's calls per grid; a checkpoint is the time to serialise its weights and optimizer state in
        memory (its disk write is left to the safety margin); an evaluation samples train.eval_samples images
        in the fast sampler's steps, estimated per image from the preview call (batches of 250 run faster
        per image: an overestimate) and without the feature extraction."""
        run, cfg = self.run, self.cfg
        started = time.perf_counter()
        call = preview_call_seconds(run)
        self.estimated["preview"] = call * network_calls_per_grid(cfg.sample.name, cfg.sample.steps)
        serialising = time.perf_counter()
        torch.save({"model": run.model.state_dict(), "ema": run.ema.state_dict() if run.ema is not None else None,
                    "optimizer": run.optimizer.state_dict()}, io.BytesIO())
        self.estimated["checkpoint"] = time.perf_counter() - serialising
        if self.evaluator is not None:
            from workbench.evaluation.during_training import FAST_STEPS

            per_image = call / max(1, run.sample_noise.shape[0])
            self.estimated["evaluation"] = per_image * self.evaluator.samples * FAST_STEPS
        self.throughput.exclude(time.perf_counter() - started)

    def _eta(self, per_step: float | None) -> float:
        """Seconds until the run ends (rank 0): the steps left at `per_step`, plus the previews, evaluations
        and checkpoints still to come."""
        run = self.run
        if per_step is None or not per_step > 0:
            return float("nan")
        last_checkpoint = run.last_checkpoint[0] if run.last_checkpoint is not None else -1
        total, train, overheads = self.cfg.train.steps, self.cfg.train, self._overheads()
        if train.minutes and not self.length_decided:  # the length it would decide now, not the cap
            total = decide_total_steps(budget_s=60.0 * train.minutes, elapsed_s=self._wall(),
                                       seconds_per_step=per_step, step=run.step, cap=total, overheads=overheads)
        return eta_seconds(step=run.step, total=total, seconds_per_step=per_step,
                           overheads=overheads, previews_through=max(run.step - 1, run.last_sample_step),
                           checkpoints_through=max(run.step - 1, last_checkpoint), evaluations_through=run.step - 1)

    def _wall(self) -> float:
        """Seconds since the run began in this process, pauses left out (train.minutes' clock)."""
        return time.perf_counter() - self.started - self.paused_s

    def _compile_first_step(self) -> None:
        """The first step of a torch.compile'd model compiles it: say how long that took, and keep it out of
        img/s and the ETA (it would otherwise promise hours for a run that then trains at full speed)."""
        started = time.perf_counter()
        self._train_step()
        sync_device(self.run.device)
        seconds = time.perf_counter() - started
        self.throughput.exclude(seconds)
        self.compiling = False
        self._warn(f"torch.compile: the first step (compiling the model) took {seconds:.0f} s; img/s and the ETA "
                   "leave it out, and inductor's cache makes the next start of the same model faster")

    def _train_step(self) -> None:
        run, train = self.run, self.cfg.train
        run.lr = lr_for_config(run.step, train)
        set_lr(run.optimizer, run.lr)
        run.optimizer.zero_grad(set_to_none=True)
        accum = train.grad_accum
        losses_seen, t_seen = [], []
        for micro in range(accum):
            x, y = run.data.next_batch(run.micro_batch)
            t, noise = self._draw_t_and_noise(x)
            if y is not None and train.label_dropout > 0 and run.cfg.backbone.params.get("num_classes"):
                y = self._drop_labels(y)
            if run.precision.channels_last:
                x, noise = x.contiguous(memory_format=torch.channels_last), noise.contiguous(memory_format=torch.channels_last)
            no_sync = run.ddp.no_sync() if run.ddp is not None and micro < accum - 1 else contextlib.nullcontext()
            with no_sync:
                with run.precision.autocast(run.device):
                    losses, t = run.diffusion.training_losses(
                        run.forward, x, t=t, noise=noise, weighting=train.loss_weighting,
                        min_snr_gamma=train.min_snr_gamma, model_kwargs={"y": y} if y is not None else None)
                    loss = losses.mean() / accum
                (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
            losses_seen.append(losses.detach())
            t_seen.append(t)
        if run.scaler is not None:
            run.scaler.unscale_(run.optimizer)
        grad_norm = clip_gradients(run.trainable, train.grad_clip)
        losses_all = torch.cat(losses_seen) if accum > 1 else losses_seen[0]
        if run.scaler is not None:
            run.scaler.step(run.optimizer)  # skips the update itself when the scaled gradients overflowed
            run.scaler.update()
            finite = torch.isfinite(losses_all.sum())
        else:
            finite = torch.isfinite(grad_norm)  # equal on every rank: gradients are already all-reduced
            if run.fused:
                run.optimizer.found_inf = (~finite).float()  # the fused kernel skips the update on device
                try:
                    run.optimizer.step()
                finally:
                    del run.optimizer.found_inf
            elif bool(finite):  # a sync, but only on devices without a fused Adam
                run.optimizer.step()
        run.window.add_step(losses_all, torch.cat(t_seen) if accum > 1 else t_seen[0], grad_norm, finite)

    def _draw_t_and_noise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Timesteps and noise for this micro-batch. Every rank draws those of the whole global micro-batch
        from the same generator and keeps its own slice, so a torchrun job pairs sample i of the global
        batch with the same (t, noise) as a single process would."""
        run = self.run
        world, rank, micro = run.distributed.world_size, run.distributed.rank, run.micro_batch
        t = run.diffusion.sample_timesteps(micro * world, run.device, run.noise_generator)
        noise = randn((micro * world,) + tuple(x.shape[1:]), run.noise_generator, run.device)
        if world > 1:
            t, noise = t[rank * micro:(rank + 1) * micro], noise[rank * micro:(rank + 1) * micro]
        return t, noise

    def _drop_labels(self, y: torch.Tensor) -> torch.Tensor:
        """Classifier-free guidance training (Ho & Salimans 2022): each label becomes the "no label" class
        (index num_classes) with probability train.label_dropout. The mask comes from the training-noise
        generator, drawn for the global micro-batch like t and noise, so resumes and torchrun ranks agree."""
        run = self.run
        world, rank, micro = run.distributed.world_size, run.distributed.rank, run.micro_batch
        drop = torch.rand(micro * world, generator=run.noise_generator, device=run.device)
        drop = drop[rank * micro:(rank + 1) * micro] < self.cfg.train.label_dropout
        return torch.where(drop.to(y.device), run.cfg.backbone.params["num_classes"], y)

    # -- logging, samples, checkpoints -------------------------------------------------------------

    def _log(self) -> str:
        """Publish this log window's metrics (the sync point). Returns why to roll back to the last
        checkpoint (non-finite steps in BAD_WINDOWS_BEFORE_RESTORE windows in a row), else ""."""
        run = self.run
        world = run.distributed.world_size
        reduce = (lambda v: dist_utils.all_reduce_sum(v, run.distributed)) if world > 1 else None
        summary = run.window.read(reduce=reduce)
        steps = run.step - run.last_log_step
        run.last_log_step = run.step
        it_per_s, img_per_s = self.throughput.lap(steps, steps * self.cfg.train.batch_size)
        peak = peak_flops(run.device)
        mfu = 3 * run.flops_per_image * img_per_s / (peak * world) if peak and run.flops_per_image else -1.0
        eta = float("nan")
        if run.distributed.is_main:  # steady speed so far; the window's before the steady timing starts
            eta = self._eta(self.throughput.seconds_per_step(self.trained) or (1 / it_per_s if it_per_s > 0 else None))
        self.pub.emit(StepMetrics(step=run.step, loss=summary.loss, lr=run.lr, grad_norm=summary.grad_norm,
                                  it_per_s=it_per_s, img_per_s=img_per_s, elapsed_s=self._elapsed(), eta_s=eta,
                                  loss_quartiles=summary.loss_quartiles, gpu_mem_bytes=gpu_memory_peak(run.device),
                                  gpu_util=gpu_utilization(run.device), mfu=mfu))
        skipped = summary.nonfinite_steps // world
        if not skipped:
            run.bad_windows = 0
            return ""
        self._warn(f"{skipped} of the last {summary.steps // world} steps had a non-finite loss or gradient "
                   "and were skipped")
        run.bad_windows += 1
        if run.bad_windows >= BAD_WINDOWS_BEFORE_RESTORE:
            return f"non-finite losses in {run.bad_windows} log windows in a row"
        return ""

    def _elapsed(self) -> float:
        return self.run.elapsed_before + time.perf_counter() - self.session_start

    def _sample(self) -> None:
        run = self.run
        run.last_sample_step = run.step
        if not run.distributed.is_main:
            return
        started = time.perf_counter()
        try:
            grid = preview_grid(run)
        except NonFiniteSamples as exc:  # say so in the event log instead of saving a grey grid
            self._warn(f"{exc}; no sample grid saved at step {run.step}")
            self.throughput.exclude(time.perf_counter() - started)
            return
        path = self.run_dir.sample_path(run.step)
        save_grid(grid, path, self.cfg.sample.grid_scale)
        self.pub.emit(SamplesReady(step=run.step, path=str(path), image=grid))
        self.costs["preview"] = time.perf_counter() - started
        self.throughput.exclude(self.costs["preview"])

    def _quality_evaluator(self):
        """(evaluator, every, note): train.eval_every's evaluator on the main rank, checked before anything
        is written (see workbench.evaluation.during_training)."""
        run = self.run
        evaluator, every, note = None, 0, ""
        if run.distributed.is_main:
            from workbench.evaluation.during_training import training_evaluator

            evaluator, every, note = training_evaluator(self.cfg, channels=run.channels, image_size=run.image_size,
                                                        device=run.device, best=run.quality_best)
        if run.distributed.enabled:  # every rank must agree on when to wait for an evaluation
            box = [every]
            torch.distributed.broadcast_object_list(box, src=0)
            every = box[0]
        return evaluator, every, note

    def _evaluate(self) -> None:
        """Sample quality of the EMA weights (main rank; the others wait at the next collective). The time
        is excluded from img/s and reported with the result."""
        run = self.run
        started = time.perf_counter()
        quality = None
        if run.distributed.is_main:
            net = run.ema.module if run.ema is not None else run.model
            quality = self.evaluator.evaluate(net, run.diffusion, self.cfg, step=run.step, channels=run.channels,
                                              image_size=run.image_size)
            if quality.is_best:
                run.quality_best = {"step": run.step, "value": quality.value, "metric": quality.label}
        is_best = [bool(quality and quality.is_best)]
        if run.distributed.enabled:
            torch.distributed.broadcast_object_list(is_best, src=0)
        if is_best[0] and self.cfg.train.keep_best:
            self._checkpoint_best()
        if quality is not None:
            result = quality.result
            self.pub.emit(QualityMeasured(step=run.step, metric=quality.label, value=quality.value, n=result.n,
                                          extractor=result.extractor, seconds=time.perf_counter() - started,
                                          best_step=quality.best_step, best_value=quality.best_value,
                                          kid=result.kid, kid_std=result.kid_std))
            self.costs["evaluation"] = time.perf_counter() - started
        self.throughput.exclude(time.perf_counter() - started)

    def _checkpoint_best(self) -> None:
        """checkpoints/best.pt: the whole training state at the best evaluation (`sample --best`)."""
        run = self.run
        if not self._weights_finite():
            return
        data_ranks = self._gather(run.data.state_dict())
        rng_ranks = self._gather(rank_rng_state(run.device))
        if run.distributed.is_main:
            checkpoint = encode_training_state(run, run.step, data_ranks=data_ranks, rng_ranks=rng_ranks,
                                               elapsed_s=self._elapsed())
            save_checkpoint(self.run_dir.best_checkpoint, checkpoint)

    def _weights_finite(self) -> bool:
        norms = torch._foreach_norm([p.detach() for p in self.run.trainable])
        return bool(torch.isfinite(torch.stack(norms)).all())  # a sync: fine at checkpoint time

    def _checkpoint(self) -> None:
        """Save a checkpoint at this step; never of non-finite weights: roll back to the last one instead."""
        run = self.run
        started = time.perf_counter()
        if not self._weights_finite():
            self._restore_last_good("the weights became non-finite")
            return
        data_ranks = self._gather(run.data.state_dict())
        rng_ranks = self._gather(rank_rng_state(run.device))
        path = self.run_dir.latest_checkpoint
        if run.distributed.is_main:
            checkpoint = encode_training_state(run, run.step, data_ranks=data_ranks, rng_ranks=rng_ranks,
                                               elapsed_s=self._elapsed())
            path = save_run_checkpoint(self.run_dir.checkpoints_dir, run.step, checkpoint,
                                       self.cfg.train.keep_checkpoints)
            self.pub.emit(CheckpointSaved(step=run.step, path=str(path)))
        run.last_checkpoint = (run.step, path)
        self.costs["checkpoint"] = time.perf_counter() - started
        self.throughput.exclude(self.costs["checkpoint"])

    def _gather(self, obj) -> list:
        distributed = self.run.distributed
        if not distributed.enabled:
            return [obj]
        out = [None] * distributed.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def _restore_last_good(self, why: str) -> None:
        """Go back to the last checkpoint (weights, EMA, optimizer, scaler, step) instead of writing a broken
        one; the data order and noise go on, so the same batches are not replayed."""
        run = self.run
        run.restores += 1
        if run.last_checkpoint is None or run.restores > MAX_RESTORES:
            raise TrainingFailed(f"{why} and {'no checkpoint to go back to' if run.last_checkpoint is None else f'{MAX_RESTORES} restores did not help'}; "
                                 "lower train.lr, raise train.warmup_steps or use train.precision = \"fp32\"")
        step, _ = run.last_checkpoint
        checkpoint = load_checkpoint(self.run_dir.latest_checkpoint, map_location=run.device)
        restore_weights(checkpoint, run.model, run.ema, run.optimizer, run.scaler)
        if run.scaler is not None:
            run.scaler.update(new_scale=run.scaler.get_scale() / 2.0)
        run.window.values.zero_()
        run.step = run.last_log_step = int(checkpoint["step"])
        run.bad_windows = 0
        self._warn(f"{why}: restored the checkpoint of step {step} (data order goes on)")

    # -- control -----------------------------------------------------------------------------------

    def _handle_control(self, commands: list[str]) -> None:
        run = self.run
        for command in commands:
            if command == "stop":
                if not run.stop_requested:
                    run.stop_requested = True
                    self.pub.emit(StateChanged("stopping", step=run.step))
            elif command == "sample":
                self._sample()
            elif command == "checkpoint":
                self._checkpoint()
            elif command == "pause" and not run.stop_requested:
                self._pause()

    def _pause(self) -> None:
        run = self.run
        started = time.perf_counter()
        self.pub.emit(StateChanged("paused", step=run.step))
        while True:
            time.sleep(0.2)
            commands = self.inbox.while_paused()
            if "stop" in commands:
                self._handle_control(["stop"])
                break
            if "resume" in commands:
                break
            self._handle_control([c for c in commands if c in ("sample", "checkpoint")])
        if not run.stop_requested:
            self.pub.emit(StateChanged("resumed", step=run.step))
        self.paused_s += time.perf_counter() - started
        self.throughput.exclude(time.perf_counter() - started)

    # -- ending ------------------------------------------------------------------------------------

    def _finish(self) -> None:
        run = self.run
        stopped_early = run.step < self.cfg.train.steps
        if not stopped_early and run.last_sample_step != run.step:
            self._sample()
        # The checkpoint comes before the last (partial) log line, so it holds the unfinished metric window
        # and a resumed run logs exactly what an uninterrupted one would.
        if run.last_checkpoint is None or run.last_checkpoint[0] != run.step:
            self._checkpoint()
        if run.last_log_step != run.step:
            self._log()
        self.pub.emit(RunFinished(step=run.step, run_dir=str(self.run_dir.path), stopped_early=stopped_early))

    def _kept(self) -> str:
        last = self.run.last_checkpoint
        if last is not None:
            return f"checkpoint at step {last[0]}: {last[1]}"
        return f"no checkpoint yet; config, metrics and samples in {self.run_dir.path}" if self.run_dir else "nothing"

    def _fail(self, message: str) -> str:
        """Record the failure (one event; status.json follows it) and return the one-line message."""
        message = " ".join(message.split())
        kept = self._kept()
        step = self.run.step
        if self.run_dir is not None and self.run.distributed.is_main:
            try:
                self.pub.emit(RunFailed(message=message, kept=kept, step=step))
            except Exception:  # noqa: BLE001 - a full disk must not hide the original error
                pass
        return f"training failed at step {step}: {message} (kept: {kept})"

    def _write_traceback(self) -> str:
        if self.run_dir is None or not self.run.distributed.is_main:
            return ""
        try:
            (self.run_dir.path / "traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
            return f" (traceback in {self.run_dir.path / 'traceback.txt'})"
        except OSError:
            return ""

    def _warn(self, message: str) -> None:
        self.pub.emit(RunWarning(message, step=self.run.step))


def train(cfg, *, on_event=None, resume: str | None = None, run_dir: RunDirectory | str | Path | None = None,
          stop_event: threading.Event | None = None, init_from: str | InitialWeights | None = None,
          started: float | None = None) -> RunDirectory:
    """Train `cfg` (a workbench.config.Config) and return its run directory.

    on_event(event): called on rank 0 with every event (see workbench.engine.events) as it happens.
    resume: a run name, path or "latest" to continue from its newest checkpoint, exactly.
    init_from: a run or checkpoint file (or its read InitialWeights) whose weights a new run starts from:
    fine-tuning with a fresh optimizer at step 0 (workbench.engine.initial_weights).
    run_dir: write into this existing directory instead of creating one under run.dir.
    stop_event: set it (from any thread) to stop after the current step with a checkpoint.
    started: time.perf_counter() when the run began (default: now), the start of train.minutes' budget.
    Raises WorkbenchError before anything is written for user errors, TrainingFailed afterwards."""
    return Trainer(cfg, on_event=on_event, resume=resume, run_dir=run_dir, stop_event=stop_event,
                   init_from=init_from, started=started).run_training()
