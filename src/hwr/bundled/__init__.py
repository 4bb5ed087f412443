"""The model hwr ships, so a person can read handwriting before training anything.

62 classes (0-9 A-Z a-z), trained by `experiment=chars62_cnn` on EMNIST ByClass and English
Hnd at once; `MODEL_CARD.md` beside it says on what, with which command, and how well.
`ckpt_path=bundled` names it anywhere a checkpoint is read (predict, serve, export, eval),
`init_from=bundled` fine-tunes from it, and predict, serve and export use it when they are
given no `ckpt_path` at all. `scripts/train_bundled.sh` rebuilds it.

The file is a checkpoint cut down to what inference and fine-tuning read (the network's
weights, its settings, what it was trained on), loadable with weights-only loading. The
weights are stored in float16: half the size, and float32 again once loaded into the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAME = "bundled"
FOLDER = Path(__file__).resolve().parent
WEIGHTS = FOLDER / "chars62.pt"
CARD = FOLDER / "MODEL_CARD.md"
METRICS = FOLDER / "metrics.json"  # its test figures (the card's), as a run's metrics.json


def resolve(spec: str | Path) -> str | Path:
    """One checkpoint path as given, with `bundled` replaced by the bundled file's path."""
    return str(WEIGHTS) if str(spec) == NAME else spec


def is_bundled(path: str | Path) -> bool:
    """Whether `path` is the bundled model's file."""
    return Path(path).resolve() == WEIGHTS


def default(spec: Any, note: Any = None) -> Any:
    """`ckpt_path` as given, or the bundled model when none was given; `note(line)` is called
    to say so, because a person should know which model is answering."""
    if spec is None or spec == "":
        if note is not None:
            note("no ckpt_path: using the bundled model (62 classes; hwr/bundled/MODEL_CARD.md)")
        return str(WEIGHTS)
    return spec
