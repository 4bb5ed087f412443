"""`hwr <command> [overrides]` and `python -m hwr <command> [overrides]`: one console command.

    hwr train model=mlp trainer.max_epochs=1
    hwr eval ckpt_path=outputs/train/runs/<time>/checkpoints/best.ckpt
    hwr predict ckpt_path=... inputs=[a.png] --json

Each command is a module of hwr.commands with a `main`; the rest of the command line is the
command's own (Hydra overrides, --help, -m).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": "fit a model and test it (the default config: MNIST, CNN)",
    "eval": "test checkpoints on a test split or a whole dataset",
    "predict": "top-k classes of image files (--json for JSON)",
    "export": "ONNX or TorchScript, checked against PyTorch",
    "serve": "a page to draw on, and a JSON API",
    "explore": "figures and statistics of a dataset",
    "baselines": "k-nearest neighbours and a random forest",
    "results": "every run below a folder in one table, best first",
}


def usage() -> str:
    lines = ["usage: hwr <command> [key=value ...]   (hwr <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the command named by the first argument with the rest of the command line."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        raise SystemExit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: hwr {name} is not a command; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)
    if name == "predict":  # `--json` reads better than Hydra's json=true; both work
        rest = ["json=true" if arg == "--json" else arg for arg in rest]
    sys.argv = [f"hwr {name}", *rest]
    importlib.import_module(f"hwr.commands.{name}").main()


if __name__ == "__main__":
    main()
