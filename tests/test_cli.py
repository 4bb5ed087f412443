"""Entry points: importing hwr changes nothing global; `hwr.runs.entry.prepare` does the set-up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

# Run in a fresh interpreter: this test process has imported hwr already.
PROBE = r"""
import json, logging, os, pkgutil, sys, warnings, importlib
import matplotlib, torch
from lightning.pytorch.strategies.launchers import subprocess_script

def state():
    return {
        "ddp_hook": subprocess_script._hydra_subprocess_cmd.__module__,
        "backend": repr(dict.__getitem__(matplotlib.rcParams, "backend")),
        "environ": sorted(os.environ),
        "warning_filters": len(warnings.filters),
        "root_handlers": len(logging.getLogger().handlers),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "default_dtype": str(torch.get_default_dtype()),
    }

before = state()
import hwr
names = sorted(m.name for m in pkgutil.walk_packages(hwr.__path__, "hwr."))
for name in names:
    importlib.import_module(name)
after = state()
import hwr.runs.entry
hwr.runs.entry.prepare()
print(json.dumps({"modules": names, "before": before, "after": after, "prepared": state()}))
"""


@pytest.mark.slow
def test_importing_every_hwr_module_changes_nothing_global():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {
        "hwr.commands.train",
        "hwr.commands.eval",
        "hwr.commands.serve",
        "hwr.evaluation.report",
        "hwr.runs.entry",
    } <= set(result["modules"])
    assert result["after"] == result["before"]
    # ...and the probe sees the set-up when it happens: prepare() installs the DDP hook
    assert result["prepared"]["ddp_hook"] == "hwr.runs.ddp"
    assert result["before"]["ddp_hook"] != "hwr.runs.ddp"


def test_a_lightning_without_the_ddp_hook_is_refused(monkeypatch):
    """DDP under Hydra relies on a private Lightning hook: its absence stops the command at once."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    from hwr.runs import ddp

    monkeypatch.delattr(subprocess_script, "_hydra_subprocess_cmd")
    with pytest.raises(RuntimeError, match=r"subprocess_script._hydra_subprocess_cmd.*lightning>=2.4,<2.7"):
        ddp.install()
