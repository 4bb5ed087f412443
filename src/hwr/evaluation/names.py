"""Names for characters that look alike: a lone "l" on a screen could be I, l or 1.

One table, used wherever a class label is shown to a person (the page, terminal tables,
figure captions), so a reader can tell "capital i" from "small L" whatever the typeface.
"""

from __future__ import annotations

from collections.abc import Iterable

# Each group is drawn alike by most hands and fonts; a label is named only when its model
# also knows another member of its group (MNIST's "0" needs no "zero").
LOOKALIKE_GROUPS = (
    {"I": "capital i", "l": "small L", "1": "one"},
    {"O": "capital o", "o": "small o", "0": "zero"},
)


def lookalike_names(classes: Iterable[str]) -> dict[str, str]:
    """{label: name} for the labels in `classes` that another label in `classes` looks like."""
    known = set(classes)
    names: dict[str, str] = {}
    for group in LOOKALIKE_GROUPS:
        present = known & group.keys()
        if len(present) > 1:
            names |= {label: group[label] for label in present}
    return names


def labelled(label: str, names: dict[str, str]) -> str:
    """`label` with its name when it has one: "l (small L)", else the label itself."""
    return f"{label} ({names[label]})" if label in names else label
