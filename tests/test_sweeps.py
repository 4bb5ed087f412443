"""Multiruns: summary table, failed jobs as rows, seed groups."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(
    script: str, *args: str, data_dir: Path, cwd: Path, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run an entry point as a user would, in `cwd`, on the fixture data."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "HWR_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"},
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_multirun_summary_keeps_failed_jobs_and_groups_seeds(data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    # 6 pooling blocks cannot fit a 28 px image: those two jobs fail with a user error.
    run = cli(
        "train.py", "-m", "debug=fdr", "seed=1,2", "model.net.channels=[8],[8,8,8,8,8,8]",
        "model.net.head=[16]", f"hydra.sweep.dir={sweep}", data_dir=data_dir, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr[-2000:]
    assert "error: 2 of 4 jobs failed" in run.stderr
    assert "sweep summary (4 jobs, 2 failed)" in run.stdout
    rows = read_csv(sweep / "summary.csv")
    assert [r["status"] for r in rows] == ["completed", "completed", "failed", "failed"]  # best first
    assert all("at least 64 px" in r["error"] for r in rows[2:])
    assert {r["job"] for r in rows} == {"0", "1", "2", "3"}
    failed = json.loads((sweep / rows[2]["job"] / "metrics.json").read_text())
    assert failed["status"] == "failed" and "seed=" in " ".join(failed["overrides"])
    summary = (sweep / "summary.md").read_text()
    assert "## Over seeds (mean ± std)" in summary
    [group] = [line for line in summary.splitlines() if "model.net.channels=[8] " in line and "±" in line]
    assert "| 2 |" in group  # two seeds in the group


def test_optuna_study_is_stored_and_continued(data_dir, tmp_path):
    optuna = __import__("pytest").importorskip(
        "optuna", reason="the sweeps extra (hwr[sweeps]) is not installed"
    )
    args = ["hparams_search=mnist_optuna", "model=mlp", "debug=fdr", "hydra.sweeper.n_trials=2",
            "callbacks.progress_bar=null", f"paths.log_dir={tmp_path / 'out'}"]  # fmt: skip
    first = cli("train.py", *args, data_dir=data_dir, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    study_dir = tmp_path / "out" / "debug" / "optuna" / "mnist_mlp"
    again = cli("train.py", *args, data_dir=data_dir, cwd=tmp_path)  # the same command continues it
    assert again.returncode == 0, again.stderr[-2000:]
    study = optuna.load_study(study_name="mnist_mlp", storage=f"sqlite:///{study_dir / 'optuna.db'}")
    assert len(study.trials) == 4 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert len(list(study_dir.glob("*/metrics.json"))) == 4  # the second session overwrote nothing
    best = (study_dir / "optimization_results.yaml").read_text()
    assert "best_params" in best and "model.optimizer.lr" in best
    assert "Best parameters" in again.stdout + again.stderr
    assert len(read_csv(study_dir / "summary.csv")) == 4
