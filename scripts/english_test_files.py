"""Write the English test split of a checkpoint as files: a .txt list and an image,label csv.

    uv run scripts/english_test_files.py <run>/checkpoints/best.ckpt --out outputs/english_test
    uv run predict.py ckpt_path=<same> inputs=[outputs/english_test/test.txt] \\
        labels=outputs/english_test/test.csv

The split (seed, test fraction, split_by) is the checkpoint's own, so predict.py sees exactly
the images eval.py tests, read from disk through hwr.preprocess instead of the cached tensor.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from hwr.data.base import default_data_dir
from hwr.errors import HwrError
from hwr.inference.checkpoint import read_checkpoint, trained_on


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt_path", help="a checkpoint trained with data=english")
    parser.add_argument("--out", default="outputs/english_test", help="folder for test.txt and test.csv")
    parser.add_argument("--data-dir", default=str(default_data_dir()), help="datasets folder ($HWR_DATA_DIR)")
    args = parser.parse_args()
    try:
        on = trained_on(read_checkpoint(args.ckpt_path), args.ckpt_path)
        dm = on.datamodule(args.data_dir)
        if not hasattr(dm, "test_files"):
            raise HwrError(f"{args.ckpt_path} was trained on {on.name}, which has no test files")
        files = dm.test_files()
    except HwrError as e:
        raise SystemExit(f"error: {e}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "test.txt").write_text("".join(f"{path.resolve()}\n" for path, _ in files))
    with open(out / "test.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        writer.writerows((str(path.resolve()), label) for path, label in files)
    print(f"{len(files)} test images -> {out / 'test.txt'}, {out / 'test.csv'}")


if __name__ == "__main__":
    main()
