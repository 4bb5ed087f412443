"""Serve a model's drawing page and JSON API: `python serve.py ckpt_path=.../best.ckpt [port=8000]`."""

from hwr.serve import main

if __name__ == "__main__":
    main()
