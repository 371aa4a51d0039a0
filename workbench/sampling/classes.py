"""Class labels by name or index, for class-conditional models: `sample --class sneaker`, `--class 7`,
`--class all`, and the row names of class grids.

A model's class names come from its checkpoint (`class_names`, what the dataset reported when it trained;
older checkpoints have none and take indices only), so no dataset is loaded to read them. Names match
without regard to case, spaces, hyphens and underscores ("ankle-boot" is "Ankle boot"), or by a prefix
that only one name has ("t-shirt" is "T-shirt/top").
"""

from __future__ import annotations

import re
from typing import Sequence

from workbench.errors import UsageError

ALL = "all"


def normalized(name: str) -> str:
    return re.sub(r"[\s_-]+", "-", name.strip().lower())


def class_name(index: int, names: Sequence[str]) -> str:
    """The name of class `index` ("7" when the model has no names for it)."""
    return str(names[index]) if 0 <= index < len(names) else str(index)


def valid_classes(num_classes: int, names: Sequence[str]) -> str:
    """What --class accepts, for messages: "0 T-shirt/top, 1 Trouser, ..." or "0..9"."""
    if names:
        return ", ".join(f"{i} {class_name(i, names)}" for i in range(num_classes))
    return f"0..{num_classes - 1} (this checkpoint has no class names)"


def class_index(text: str, num_classes: int, names: Sequence[str], option: str = "--class") -> int:
    """One class given by index or name; UsageError listing the valid ones otherwise."""
    text = str(text).strip()
    if re.fullmatch(r"-?\d+", text):
        index = int(text)
        if not 0 <= index < num_classes:
            raise UsageError(f"{option} {text} is out of range; this model has classes 0..{num_classes - 1}: "
                             f"{valid_classes(num_classes, names)}")
        return index
    wanted = normalized(text)
    known = [normalized(class_name(i, names)) for i in range(num_classes)]
    if wanted in known:
        return known.index(wanted)
    prefixed = [i for i, name in enumerate(known) if wanted and name.startswith(wanted)]
    if len(prefixed) == 1:
        return prefixed[0]
    raise UsageError(f"{option} {text!r} is not a class of this model; classes: {valid_classes(num_classes, names)}")


def class_indices(requested: Sequence[str], num_classes: int, names: Sequence[str],
                  option: str = "--class") -> list[int]:
    """The classes of repeated --class options, in order; "all" stands for every class."""
    if num_classes <= 0:
        raise UsageError(f"{option}: this model is not class-conditional (backbone.num_classes is 0); train one "
                         "with --set backbone.num_classes=auto (see docs/guidance.md)")
    out: list[int] = []
    for text in requested:
        if normalized(str(text)) == ALL:
            out.extend(range(num_classes))
        else:
            out.append(class_index(text, num_classes, names, option))
    return out
