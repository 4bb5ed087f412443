"""MODEL_CARD.md: what a trained model is, what data it saw, how it was made, how good it is,
what it confuses and where it should not be trusted, in one page a person reads.

Written by the test report into `<run>/report/MODEL_CARD.md` (hwr.evaluation.report) and, by
`hwr export`, beside the exported model (hwr.inference.export), from the same `CardFacts`.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwr.evaluation.metrics import lookup, show
from hwr.evaluation.names import labelled, lookalike_names

CARD = "MODEL_CARD.md"
TOP_CONFUSIONS = 10
# the card's metric table, in this order, where the run has them
CARD_METRICS = (
    "test/acc",
    "test/acc_casefold",
    "test/acc_top5",
    "test/f1_macro",
    "test/error_share_casefold",
    "val/acc_best",
    "epochs",
    "train_time_s",
)
CARVED = (
    "**Carved data.** The EMNIST files this model saw are *carved*: the official EMNIST ByClass "
    "**test** split, cut 80/20 into a training file and a test file, because the official "
    "training files were not available. Its test accuracy is measured on the 20% part: other "
    "images of the same pool, not the official EMNIST test set, so it is not comparable with "
    "published EMNIST results."
)


@dataclass
class CardFacts:
    """What a model card says. `data` is a DataModule's `describe()` (name, classes, split,
    preprocessing, input_shape); `splits`: images per split ({"train": n, ...}); `net`: the
    network's config; `metrics`: a run record's numbers; `pairs`: the most-confused pairs
    (hwr.evaluation.report.confused_pairs)."""

    network: str
    data: Mapping[str, Any]
    net: Mapping[str, Any] = field(default_factory=dict)
    num_params: int | None = None
    splits: Mapping[str, int] = field(default_factory=dict)
    carved: bool = False
    command: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    pairs: Sequence[Mapping[str, Any]] = ()
    checkpoint: str | None = None


def class_summary(classes: Sequence[str]) -> str:
    """The classes in a line: runs such as digits 0-9, A-Z and a-z named as ranges."""
    known, parts, left = set(classes), [], list(classes)
    for run in (string.digits, string.ascii_uppercase, string.ascii_lowercase):
        if set(run) <= known:
            parts.append(f"{run[0]}-{run[-1]}")
            left = [c for c in left if c not in run]
    parts += left if len(left) <= 30 else [*left[:30], f"... ({len(left) - 30} more)"]
    return ", ".join(parts)


def _net_line(net: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in net.items() if not k.startswith("_")}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "defaults"


def _data_lines(name: str, class_path: str, split: Mapping[str, Any]) -> list[str]:
    """The dataset and its split settings; a mix as one line per source and its weight."""
    sources = split.get("sources")
    if not isinstance(sources, Mapping):
        return [f"- Dataset: `{name}` (`{class_path}`), split settings: {_net_line(split)}."]
    weights = split.get("weights") or {}
    rest = {k: v for k, v in split.items() if k not in ("sources", "weights")}
    drawn = " : ".join(f"{k} {weights[k]:g}" for k in sources if k in weights)
    drawn = f", drawn {drawn}" if drawn else ""
    out = [f"- Dataset: `{name}` (`{class_path}`){drawn}; {_net_line(rest)}:"]
    for key, source in sources.items():
        settings = {k: v for k, v in (source.get("split") or {}).items() if v is not None}
        out.append(f"  - `{key}`: `{source.get('class_path', '?')}`, split settings: {_net_line(settings)}.")
    return out


def _limits(facts: CardFacts, names: Sequence[str]) -> list[str]:
    shape = facts.data.get("input_shape") or [1, "?", "?"]
    out = [
        f"It reads one isolated, centred character at a time ({shape[-2]}x{shape[-1]} px, white ink on "
        "black after preprocessing); it does not segment words or lines, and every input gets one of "
        f"its {len(names)} classes, even an image that is no character at all.",
        f"Its scores are measured on the test split of {facts.data.get('name', 'its dataset')} alone: "
        "other hands, pens, scanners or languages can score lower.",
    ]
    if lookalike_names(names):
        out.append(
            "Some classes look alike in most hands (0/O/o, 1/I/l, and upper/lower case pairs such as "
            "c/C, s/S): without context no reader can settle them; `test/acc_casefold` counts those "
            "as right."
        )
    split = facts.data.get("split") or {}
    if split.get("split_by") == "class":
        out.append(
            "Its test split was drawn per class (`split_by=class`), so the same writers appear in "
            "training and test: expect a lower score on new writers (`data.split_by=writer` measures that)."
        )
    if facts.carved:
        out.append("Trained and tested on carved EMNIST data (above): not the official EMNIST splits.")
    return out


def model_card(facts: CardFacts) -> str:
    """The card's Markdown text."""
    names = list(facts.data.get("classes") or [])
    data_name = facts.data.get("name", "?")
    lines = [f"# Model card: {facts.network} on {data_name}", ""]
    lines += ["## What it is", ""]
    params = f", {facts.num_params:,} parameters" if facts.num_params else ""
    lines.append(f"- Network: `{facts.network}` ({_net_line(facts.net)}){params}.")
    shape = facts.data.get("input_shape")
    if shape:
        size = "x".join(map(str, shape))
        lines.append(
            f"- Input: {size} (channels x height x width); output: {len(names)} class probabilities."
        )
    if facts.checkpoint:
        lines.append(f"- Checkpoint: `{facts.checkpoint}`.")
    lines += ["", "## Data it saw", ""]
    lines += _data_lines(data_name, facts.data.get("class_path", "?"), facts.data.get("split") or {})
    if facts.splits:
        sizes = ", ".join(f"{k} {v:,}" for k, v in facts.splits.items())
        lines.append(f"- Images: {sizes} (validation is held out of the training pool).")
    lines.append(f"- Classes ({len(names)}): {class_summary(names)}.")
    if facts.carved:
        lines += ["", CARVED]
    lines += ["", "## How it was made", ""]
    lines.append(f"```\n{facts.command}\n```" if facts.command else "- The command is not recorded.")
    lines += ["", "## How good it is", "", "| metric | value |", "|---|---:|"]
    for key in CARD_METRICS:
        value = facts.metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            metric = lookup(key)
            lines.append(f"| {metric.display if metric else key} (`{key}`) | {show(key, value)} |")
    lines += ["", "## What it confuses", ""]
    if facts.pairs:
        lookalikes = lookalike_names(names)
        lines += ["| true | taken for | images | share of the true class |", "|---|---|---:|---:|"]
        for p in list(facts.pairs)[:TOP_CONFUSIONS]:
            true, pred = labelled(str(p["true"]), lookalikes), labelled(str(p["predicted"]), lookalikes)
            lines.append(f"| {true} | {pred} | {int(p['count'])} | {100 * float(p['share']):.1f}% |")
    else:
        lines.append("No mistakes on the test split (or no test was run).")
    lines += ["", "## Limits", "", *(f"- {line}" for line in _limits(facts, names)), ""]
    return "\n".join(lines)


def _command(run_dir: Path, fitted: bool) -> str | None:
    """`hwr <command> <overrides>` of the run in `run_dir` (its .hydra/overrides.yaml)."""
    import yaml

    try:
        args = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        return None
    name = "train" if fitted else "eval"
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        name = HydraConfig.get().job.config_name or name
    return " ".join(["hwr", str(name), *(shlex.quote(str(a)) for a in args)])


def card_facts(trainer: Any, module: Any, history: Any, run_dir: Path) -> CardFacts:
    """What the card says of a model just tested by `trainer` (`module`: the Tester, holding the
    TrainedModel), trained for the epochs of `history` (an EpochHistory), in `run_dir`."""
    dm, trained = trainer.datamodule, getattr(module, "trained", None)
    names = list(module.class_names)
    describe = getattr(dm, "describe", None)
    data = describe() if describe is not None else {"name": type(dm).__name__, "classes": names}
    splits = {k: len(s) for k in ("train", "val", "test") if (s := getattr(dm, f"{k}_set", None)) is not None}
    metrics: dict[str, Any] = {
        k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")
    }
    val = [r["val/acc"] for r in history.rows if "val/acc" in r]
    if val:
        metrics |= {"val/acc_best": max(val), "epochs": len(history.rows)}
    clock = next((c for c in trainer.callbacks if callable(getattr(c, "elapsed", None))), None)
    if clock is not None and clock.seconds is not None:  # hwr.training.callbacks.TrainingClock
        metrics["train_time_s"] = clock.seconds
    command = _command(run_dir, bool(history.rows))
    where = f"{getattr(dm, 'data_dir', '')} {command or ''}".lower()
    checkpoint = None
    if trained is not None and len(trained.sources) == 1:
        source = Path(trained.sources[0]).resolve()
        checkpoint = str(
            source.relative_to(run_dir.resolve()) if source.is_relative_to(run_dir.resolve()) else source
        )
    net = module.net
    return CardFacts(
        network=type(net).__name__,
        data=data,
        net=dict((trained.hparams.get("net") or {}) if trained is not None else {}),
        num_params=sum(p.numel() for p in net.parameters()),
        splits=splits,
        carved="carved" in where,
        command=command,
        metrics=metrics,
        checkpoint=checkpoint,
    )
