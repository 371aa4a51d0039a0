"""diffusers' scheduler config (DDPMScheduler and the schedulers that share its fields) <-> our `[schedule]`,
`[train] prediction` and `[sample]` settings.

    diffusers                                   ours
    num_train_timesteps                         [schedule] timesteps
    beta_schedule linear / scaled_linear        [schedule] name = linear / scaled-linear (beta_start, beta_end)
    beta_schedule squaredcos_cap_v2             [schedule] name = cosine (s = 0.008, max_beta = 0.999)
    beta_schedule sigmoid                       [schedule] name = sigmoid-beta (beta_start, beta_end)
    trained_betas                               [schedule] name = custom, betas = [...]
    rescale_betas_zero_snr                      [schedule] zero_terminal_snr
    prediction_type epsilon / sample / v_prediction     [train] prediction = eps / x0 / v
    variance_type fixed_small(_log) / fixed_large(_log) [sample] ddpm variance = fixed-small / fixed-large
    clip_sample                                 [sample] clip_x0
    thresholding, dynamic_thresholding_ratio    [sample] dynamic_threshold (the ratio; 0 = off)

diffusers computes its betas in float32 and we in float64, so alpha-bars agree to float32 rounding.
"""

from __future__ import annotations

from typing import Any, Mapping

from workbench.errors import InteropError

# DDPMScheduler's constructor defaults (diffusers 0.42): also what a bare UNet folder (no scheduler) gets.
DDPM_DEFAULTS: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
    "trained_betas": None, "variance_type": "fixed_small", "clip_sample": True, "prediction_type": "epsilon",
    "thresholding": False, "dynamic_thresholding_ratio": 0.995, "clip_sample_range": 1.0,
    "sample_max_value": 1.0, "timestep_spacing": "leading", "steps_offset": 0, "rescale_betas_zero_snr": False,
}
PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
VARIANCES = {"fixed_small": "fixed-small", "fixed_small_log": "fixed-small",
             "fixed_large": "fixed-large", "fixed_large_log": "fixed-large"}
BETA_SCHEDULES = {"linear": "linear", "scaled_linear": "scaled-linear", "sigmoid": "sigmoid-beta"}
COSINE = {"s": 0.008, "max_beta": 0.999}  # diffusers' squaredcos_cap_v2


def refuse(field: str, value: Any, why: str) -> InteropError:
    return InteropError(f"scheduler config {field} = {value!r} cannot be mapped: {why}")


def settings_from_scheduler(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Our config sections ({"schedule": ..., "train": {"prediction"}, "sample": ...}) for a scheduler config.

    Sampling defaults to what diffusers' DDPMPipeline does: ancestral DDPM over every timestep (DDIM for a
    DDIMScheduler); InteropError naming the first field that has no counterpart."""
    c = {**DDPM_DEFAULTS, **{k: v for k, v in config.items() if not k.startswith("_")}}
    timesteps = c["num_train_timesteps"]
    if not isinstance(timesteps, int) or timesteps < 2:
        raise refuse("num_train_timesteps", timesteps, "it must be an integer >= 2")
    schedule: dict[str, Any] = {"timesteps": timesteps, "zero_terminal_snr": bool(c["rescale_betas_zero_snr"])}
    if c["trained_betas"] is not None:
        betas = [float(b) for b in c["trained_betas"]]
        if len(betas) != timesteps:
            raise refuse("trained_betas", f"<{len(betas)} values>", f"num_train_timesteps is {timesteps}")
        schedule.update(name="custom", betas=betas)
    elif c["beta_schedule"] in BETA_SCHEDULES:
        schedule.update(name=BETA_SCHEDULES[c["beta_schedule"]], beta_start=float(c["beta_start"]),
                        beta_end=float(c["beta_end"]))
    elif c["beta_schedule"] == "squaredcos_cap_v2":
        schedule.update(name="cosine", **COSINE)
    else:
        raise refuse("beta_schedule", c["beta_schedule"], "use linear, scaled_linear, squaredcos_cap_v2, sigmoid "
                     "or trained_betas")
    prediction = c["prediction_type"]
    if prediction not in PREDICTIONS:
        raise refuse("prediction_type", prediction, f"use one of {', '.join(PREDICTIONS)}")
    variance = c["variance_type"]
    if variance not in VARIANCES:
        raise refuse("variance_type", variance, "learned variances are not supported; use fixed_small or "
                     "fixed_large")
    if c["clip_sample"] and float(c["clip_sample_range"]) != 1.0:
        raise refuse("clip_sample_range", c["clip_sample_range"], "predicted images are clipped to [-1, 1] only")
    threshold = 0.0
    if c["thresholding"]:
        if float(c["sample_max_value"]) != 1.0:
            raise refuse("sample_max_value", c["sample_max_value"], "dynamic thresholding bounds x0 to [-1, 1] "
                         "only")
        threshold = float(c["dynamic_thresholding_ratio"])
    sample: dict[str, Any] = {"steps": timesteps, "clip_x0": bool(c["clip_sample"]), "dynamic_threshold": threshold}
    if config.get("_class_name") == "DDIMScheduler":
        sample.update(name="ddim", eta=0.0, steps=min(50, timesteps))
    else:
        sample.update(name="ddpm", variance=VARIANCES[variance])
    return {"schedule": schedule, "train": {"prediction": PREDICTIONS[prediction]}, "sample": sample}


def scheduler_config_for(cfg, betas) -> dict[str, Any]:
    """The DDPMScheduler config of a run (its resolved `Config`); `betas` are the run's float64 betas.

    Named schedules that diffusers computes the same way are written by name; any other (and any rescaled
    to zero terminal SNR) as `trained_betas`, which reproduces it exactly up to float32."""
    schedule, params = cfg.schedule, dict(cfg.schedule.params)
    named = {v: k for k, v in BETA_SCHEDULES.items()}
    out: dict[str, Any] = {**DDPM_DEFAULTS, "_class_name": "DDPMScheduler",
                           "num_train_timesteps": int(schedule.timesteps)}
    if schedule.zero_terminal_snr or not (schedule.name in named or (schedule.name == "cosine" and params == COSINE)):
        out.update(beta_schedule="linear", trained_betas=[float(b) for b in betas])
    elif schedule.name == "cosine":
        out.update(beta_schedule="squaredcos_cap_v2")
    else:
        out.update(beta_schedule=named[schedule.name], beta_start=params["beta_start"], beta_end=params["beta_end"])
    prediction = {v: k for k, v in PREDICTIONS.items()}[cfg.train.prediction]
    variance = "fixed_large" if cfg.sample.params.get("variance") == "fixed-large" else "fixed_small"
    threshold = float(cfg.sample.dynamic_threshold)
    out.update(prediction_type=prediction, variance_type=variance, clip_sample=bool(cfg.sample.clip_x0),
               thresholding=threshold > 0, dynamic_thresholding_ratio=threshold or 0.995)
    return out
