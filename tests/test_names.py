"""Look-alike characters are named where a person reads a label, and only where they can be confused."""

from __future__ import annotations

import string

from hwr.evaluation.names import labelled, lookalike_names

CHARS62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def test_62_classes_name_the_six_look_alikes():
    names = lookalike_names(CHARS62)
    assert names == {
        "I": "capital i",
        "l": "small L",
        "1": "one",
        "O": "capital o",
        "o": "small o",
        "0": "zero",
    }
    assert labelled("l", names) == "l (small L)" and labelled("A", names) == "A"


def test_a_label_alone_in_its_group_is_not_named():
    assert lookalike_names(string.digits) == {}  # MNIST's 0 and 1 are only digits
    assert lookalike_names("0AZab") == {}
    assert lookalike_names("0Ox") == {"0": "zero", "O": "capital o"}
