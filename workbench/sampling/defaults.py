"""Defaults of the sample command's options, in a module without torch so `--help` stays quick."""

FORMATS = ("grid", "pngs", "npz")
DEFAULT_OUT = {"grid": "samples.png", "pngs": "samples", "npz": "samples.npz"}
SUFFIXES = {"grid": (".png",), "npz": (".npz",)}

DEFAULT_FRAMES = 40         # evenly spaced sampler steps in the GIF (the final image comes on top)
DEFAULT_STRIP_COLUMNS = 10  # columns of the PNG strip, taken evenly from the same frames
DEFAULT_PROGRESSION_IMAGES = 4
PRECISIONS = ("auto", "bf16", "fp32")  # network precision while sampling (workbench.sampling.generate)
