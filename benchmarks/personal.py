"""Teaching the bundled model one person's handwriting (`experiment=personal`), before and after.

    HWR_DATA_DIR=<datasets> uv run benchmarks/personal.py --emnist-dir <carved> [--per-class 12]

A simulated person writes four characters in continental styles that EMNIST's and English
Hnd's writers rarely use: a 1 with a long flag, a crossed 7, a crossed z (which the bundled
model reads as Z) and an open-top 4. Each is drawn `--per-class` times with every corner moved a
little, stored as the page stores corrections (hwr.web.collect); then `train.py
experiment=personal data.folder=<it>` fine-tunes the bundled model with a replay of EMNIST and
English. The table: test accuracy on the person's held-out drawings and on the base test sets,
for the starting weights (`start/...`) and after (`test/...`), with the training time.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

from hwr.inference.model import TrainedModel
from hwr.web.collect import Collection

ROOT = Path(__file__).resolve().parent.parent
# label: its strokes on the 280 px pad
STYLES = {
    "1": [[(80, 110), (160, 40), (160, 235)]],
    "7": [[(50, 50), (210, 50), (110, 230)], [(80, 140), (190, 140)]],
    "z": [[(60, 70), (200, 70), (60, 220), (200, 220)], [(90, 145), (170, 145)]],
    "4": [[(70, 40), (60, 140), (200, 140)], [(160, 60), (160, 235)]],
}
SOURCES = {
    "folder": "the person's held-out drawings",
    "emnist": "EMNIST carved test",
    "english": "English Hnd test",
}


def drawing(strokes: list, rng: random.Random) -> Image.Image:
    """The strokes as one more hand-drawn copy: each point moved up to 12 px, black on white."""
    image = Image.new("L", (280, 280), 255)
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        pen.line([(x + rng.uniform(-12, 12), y + rng.uniform(-12, 12)) for x, y in stroke], fill=0, width=16)
    return image


def collect(folder: Path, per_class: int, seed: int) -> None:
    """The person's drawings, stored as the page stores corrections."""
    model, rng = TrainedModel.load("bundled", "cpu"), random.Random(seed)
    collection = Collection(folder, list(model.classes))
    for label, strokes in STYLES.items():
        for _ in range(per_class):
            image = drawing(strokes, rng)
            collection.save(image, model.preprocessing.pixels(image), label)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--emnist-dir", required=True, help="the folder holding EMNIST/ (carved here)")
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/personal"))
    args = parser.parse_args()
    folder, run = args.out / "collected", args.out / "run"
    if folder.exists() or run.exists():
        raise SystemExit(f"error: {args.out} holds an earlier measurement; pass another --out")
    collect(folder, args.per_class, args.seed)
    command = [sys.executable, str(ROOT / "train.py"), "experiment=personal",
               f"data.folder={folder.resolve()}", f"data.sources.emnist.data_dir={args.emnist_dir}",
               f"hydra.run.dir={run}"]  # fmt: skip
    print("$", " ".join(["train.py", *command[2:]]), flush=True)
    started = time.time()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    metrics = json.loads((run / "metrics.json").read_text())
    print(f"\n{len(STYLES)} characters x {args.per_class} drawings; {time.time() - started:.0f} s in all, "
          f"{metrics['train_time_s']:.0f} s of training\n")  # fmt: skip
    print("| test set | start (bundled) | after `experiment=personal` |\n|---|---:|---:|")
    for source, label in SOURCES.items():
        before, after = metrics.get(f"start/{source}/acc"), metrics.get(f"test/{source}/acc")
        if before is not None and after is not None:
            print(f"| {label} | {100 * before:.2f}% | {100 * after:.2f}% |")


if __name__ == "__main__":
    main()
