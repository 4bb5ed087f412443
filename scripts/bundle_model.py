"""Make hwr's bundled model from a finished `experiment=chars62_cnn` run:

    HWR_DATA_DIR=<datasets> uv run scripts/bundle_model.py outputs/bundled/<time> [--out src/hwr/bundled]

(scripts/train_bundled.sh trains the run and calls this.) In order:
1. the run's best checkpoint is cut to float16 network weights (inference_copy);
2. that copy is tested with eval.py on the run's own test splits and, across datasets, on
   MNIST's test set (from HWR_DATA_DIR), so the card's figures are the shipped weights';
3. `chars62.pt` (without the training machine's folders), `MODEL_CARD.md` and `metrics.json`
   (the figures, which predict, serve and the page show) are written.
A file over 10 MB is refused: the repository tracks it.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from hwr import bundled
from hwr.evaluation.model_card import CardFacts, model_card
from hwr.files import atomic_write, write_text
from hwr.inference.checkpoint import TRAINED_ON, inference_copy, read_checkpoint

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 10 * 1000 * 1000
# the card's figures: (eval run, metric, what was tested)
FIGURES = (
    ("own", "test/emnist/acc", "EMNIST ByClass, {carved}test file"),
    ("own", "test/english/acc", "English Hnd, stratified test split"),
    ("own", "test/acc", "both together"),
    ("mnist", "test/acc", "MNIST test set, as MNIST frames its digits (never trained on)"),
)
LIMITS = (
    "Photographed characters: shaded paper, a paper edge along the crop and strokes lighter than "
    "the rest are corrected before it reads them (in the redrawn-crop check each keeps at least "
    "97% of its accuracy on the scans; docs/results.md), but a sharp shadow edge across the "
    "character, a paper edge that touches it, and pieces of a broken edge line are not.",
    "Digits and letters that look alike (0/O/o, 1/I/l, s/S and the other case pairs) cannot be "
    "told apart from one character alone: predict's JSON and the page give the case-folded "
    "group's probability (`casefold`) for that reason.",
    "Its writers are EMNIST's (NIST SD 19: US Census Bureau staff and high-school students) and "
    "English Hnd's 55. Other habits read worse: a crossed z was read as Z in ten drawings of ten "
    "(`experiment=personal` teaches it a person's z); other alphabets and accented letters are "
    "not covered at all.",
)


def machine() -> str:
    """The kind of machine this runs on, for the card (no host names)."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), {gpu}"


def overrides(run: Path) -> list[str]:
    return [str(a) for a in yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) or []]


def is_carved(run: Path) -> bool:
    """Whether the run read carved EMNIST files (their folder says so, as hwr's cards assume)."""
    return any("data_dir=" in a and "carved" in a.lower() for a in overrides(run))


def placeholder_command(run: Path) -> str:
    """The run's command with its data folders as placeholders: the card is read elsewhere."""
    emnist = "<folder with the carved EMNIST/>" if is_carved(run) else "<folder with EMNIST/>"
    shown = [
        f"{a.split('=', 1)[0]}={emnist}" if "data_dir=" in a else a
        for a in overrides(run)
        if not a.startswith(("hydra.run.dir=", "trainer="))
    ]
    return " ".join(["hwr", "train", *(shlex.quote(a) for a in shown)])


def figures(run: Path) -> list[tuple[str, str, str]]:
    """FIGURES with the EMNIST row named for what the run read."""
    carved = "carved " if is_carved(run) else ""
    return [(which, key, label.format(carved=carved)) for which, key, label in FIGURES]


def evaluate(ckpt: Path, name: str, out: Path, *overrides: str) -> dict:
    """eval.py on `ckpt` (a run folder under `out`); its metrics.json."""
    folder = out / name
    cmd = [sys.executable, str(ROOT / "eval.py"), f"ckpt_path={ckpt}", f"hydra.run.dir={folder}", *overrides]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((folder / "metrics.json").read_text())


def splits(run_card: Path) -> dict[str, int]:
    """The images per split, from the line of the run's own card that counts them."""
    line = next((x for x in run_card.read_text().splitlines() if x.startswith("- Images: ")), "")
    found = re.findall(r"(train|val|test) ([\d,]+)", line)
    return {name: int(count.replace(",", "")) for name, count in found}


def top_confusions(report: Path) -> list[dict]:
    with open(report / "confusions.csv", newline="") as f:
        return list(csv.DictReader(f))


def card(run: Path, shipped: dict, results: dict, size: int) -> str:
    """MODEL_CARD.md: hwr's model card for the run's data and figures, then what is particular
    to the bundled model (how to use it, the figures per test set, training, limits)."""
    record, trained = json.loads((run / "metrics.json").read_text()), shipped[TRAINED_ON]
    own = results["own"]
    facts = CardFacts(
        network=str(shipped["hyper_parameters"]["net"]["_target_"]).rsplit(".", 1)[-1],
        data=trained,
        net=shipped["hyper_parameters"]["net"],
        num_params=record.get("num_params"),
        carved=is_carved(run),
        command=placeholder_command(run),
        metrics={
            **{k: v for k, v in own.items() if k.startswith("test/")},
            **{k: record[k] for k in ("val/acc_best", "epochs", "train_time_s") if k in record},
        },
        pairs=top_confusions(run / "bundle_eval" / "own" / "report"),
        splits=splits(run / "report" / "MODEL_CARD.md"),
        checkpoint=f"hwr/bundled/{bundled.WEIGHTS.name}",
    )
    text = model_card(facts).replace("# Model card: ", "# Model card: the bundled model, ", 1)
    when = datetime.date.today().isoformat()
    rows = [
        f"| {label} | {100 * results[which][key]:.2f}% | "
        f"{100 * results[which].get(key.replace('/acc', '/acc_casefold'), float('nan')):.2f}% |"
        for which, key, label in figures(run)
        if key in results.get(which, {})
    ]
    minutes = record.get("train_time_s", 0) / 60
    extra = [
        "## Using it",
        "",
        "`hwr predict inputs=[a.png]`, `hwr serve` and `hwr export` use it when given no `ckpt_path`",
        "(they say so); `ckpt_path=bundled` names it anywhere, and `hwr train init_from=bundled ...`",
        "fine-tunes it on your own images (`experiment=personal`).",
        f"The file holds float16 weights ({size / 1e6:.1f} MB), read with weights-only loading.",
        "",
        "## Figures per test set (the shipped float16 weights, through eval.py)",
        "",
        "| test set | top-1 | case-folded |",
        "|---|---:|---:|",
        *rows,
        "",
        f"Measured {when}. MNIST is matched to the model's classes by name (its 10 digits of 62) and",
        "tested as its files frame a digit (20 px, centred by mass), not redrawn as predict does.",
        "",
        "## Training",
        "",
        f"- {record.get('epochs')} epochs, {minutes:.0f} minutes of training "
        f"({record.get('wall_time_s', 0) / 60:.0f} in all), seed {record.get('seed')}; bundled on "
        f"{machine()}, where train_bundled.sh trains it.",
        "- Rebuild: `HWR_DATA_DIR=<datasets> bash scripts/train_bundled.sh "
        "data.sources.emnist.data_dir=<folder with EMNIST/>` (on a GPU when there is one).",
        "",
        "## More limits",
        "",
        *(f"- {line}" for line in LIMITS),
        "",
    ]
    return text.rstrip() + "\n\n" + "\n".join(extra)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("run", type=Path, help="a finished experiment=chars62_cnn run folder")
    parser.add_argument("--out", type=Path, default=bundled.FOLDER, help="where chars62.pt and the card go")
    args = parser.parse_args()
    run = args.run.resolve()
    ckpt = read_checkpoint(run / "checkpoints" / "best.ckpt")
    with tempfile.TemporaryDirectory() as tmp:
        # the tested copy keeps the run's folders, so eval.py finds the run's own test splits
        tested = Path(tmp) / "tested.pt"
        torch.save(inference_copy(ckpt, half=True, folders=True), tested)
        results = {"own": evaluate(tested, "own", run / "bundle_eval")}
        results["mnist"] = evaluate(tested, "mnist", run / "bundle_eval", "data=mnist", "report=false")
    shipped = inference_copy(ckpt, half=True)
    target = args.out / bundled.WEIGHTS.name
    with atomic_write(target, "the bundled model") as f:
        torch.save(shipped, f)
    size = target.stat().st_size
    if size > MAX_BYTES:
        target.unlink()
        raise SystemExit(
            f"error: the bundled model would be {size / 1e6:.1f} MB, over 10 MB: use a smaller net"
        )
    write_text(args.out / bundled.CARD.name, card(run, shipped, results, size), "the model card")
    record = {k: v for k, v in results["own"].items() if k.startswith("test/")}
    record |= {f"mnist/{k}": v for k, v in results["mnist"].items() if k.startswith("test/")}
    write_text(args.out / bundled.METRICS.name, json.dumps(record, indent=1) + "\n", "its figures")
    shown = [(name, results[w][key]) for w, key, name in figures(run) if key in results.get(w, {})]
    for label, value in shown:
        print(f"{label:{max(len(x) for x, _ in shown)}s} {100 * value:6.2f}%")
    print(f"wrote {target} ({size / 1e6:.2f} MB), its card and metrics.json in {args.out}")


if __name__ == "__main__":
    main()
