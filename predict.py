"""Predict image files: `python predict.py ckpt_path=.../best.ckpt inputs=[img.png,folder/] [--json]`."""

import sys

from hwr.predict import main

if __name__ == "__main__":
    # `--json` reads better than Hydra's json=true; both work.
    sys.argv = ["json=true" if arg == "--json" else arg for arg in sys.argv]
    main()
