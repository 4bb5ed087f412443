"""Collect every metrics.json under a folder into one results table and print it: the same as
`hwr results` (hwr.commands.results), for a checkout without the `hwr` command on the path.

    uv run scripts/results.py outputs/ [--sort test/acc] [--output results.md|results.csv]

The folder it reads is left as it is: the table is written only to `--output`.
"""

from __future__ import annotations

from hwr.commands.results import main

if __name__ == "__main__":
    main()
