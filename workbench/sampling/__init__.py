"""Sampling a trained model: loading it, calling it, many images in batches, progressions, forward strips.

    from workbench.sampling.model import load_for_sampling, model_function  # the one way to load and call a model
    bundle = load_for_sampling(run="latest", device=device)                # (training previews use model_function)
    from workbench.sampling.generate import SampleSettings, generate        # batched, seeded, device-resident
    result = generate(bundle, sampler, SampleSettings(n=64, steps=50, seed=0), device=device)
    from workbench.sampling.progression import ProgressionRecorder, gif_bytes, strip_picture
    from workbench.sampling.forward import forward_block, forward_strip
    from workbench.sampling.outputs import OutputPlan                      # all-or-nothing output files

The command line lives in workbench.commands.sample and workbench.commands.forward; docs/sampling.md
describes both.
"""
