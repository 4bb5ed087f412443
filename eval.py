"""Test a checkpoint: `python eval.py ckpt_path=outputs/.../checkpoints/best.ckpt data=...`."""

from hwr.eval import main

if __name__ == "__main__":
    main()
