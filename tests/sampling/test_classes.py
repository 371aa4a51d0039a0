"""Classes by name or index: what --class accepts, and the one line it says otherwise."""

from __future__ import annotations

import pytest

from workbench.errors import UsageError
from workbench.sampling.classes import class_indices, class_name

GARMENTS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@pytest.mark.parametrize("text, index", [
    ("sneaker", 7), ("SNEAKER", 7), ("7", 7), ("ankle-boot", 9), ("ankle_boot", 9), ("Ankle  boot", 9),
    ("t-shirt", 0),  # a prefix only one name has
    ("shirt", 6),    # an exact name wins over being a prefix of another
])
def test_a_class_is_a_name_in_any_case_and_spacing_a_unique_prefix_or_an_index(text, index):
    assert class_indices([text], 10, GARMENTS) == [index]


def test_all_is_every_class_in_order_and_repeats_keep_their_order():
    assert class_indices(["bag", "all", "0"], 10, GARMENTS) == [8, *range(10), 0]


@pytest.mark.parametrize("text, message", [
    ("s", "--class 's' is not a class of this model; classes: 0 T-shirt/top, 1 Trouser,"),  # ambiguous prefix
    ("boots", "--class 'boots' is not a class of this model; classes: 0 T-shirt/top"),
    ("10", "--class 10 is out of range; this model has classes 0..9"),
    ("-1", "--class -1 is out of range"),
])
def test_anything_else_lists_the_valid_classes(text, message):
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as info:
        class_indices([text], 10, GARMENTS)
    assert "9 Ankle boot" in str(info.value) and "\n" not in str(info.value)


def test_without_names_only_indices_work_and_rows_are_named_by_index():
    assert class_indices(["2"], 3, ()) == [2]
    with pytest.raises(UsageError, match=r"classes: 0\.\.2 \(this checkpoint has no class names\)"):
        class_indices(["disk"], 3, ())
    assert class_name(2, ()) == "2" and class_name(7, GARMENTS) == "Sneaker"


def test_an_unconditional_model_takes_no_class():
    with pytest.raises(UsageError, match="this model is not class-conditional"):
        class_indices(["0"], 0, ())
