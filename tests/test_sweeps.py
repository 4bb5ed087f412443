"""Multiruns: summary table, failed jobs as rows, seed groups, launchers (Optuna studies:
test_studies.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import make_config, read_csv, run_script

from hwr.commands.eval import evaluate
from hwr.evaluation.results import summarize_sweep


@pytest.mark.slow  # starts processes
def test_multirun_summary_keeps_failed_jobs_and_groups_seeds(data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    # 6 pooling blocks cannot fit a 28 px image: those two jobs fail with a user error.
    run = run_script(
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


LAUNCHERS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", ["hydra.launcher.n_jobs=2"]),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", ["hydra.launcher.timeout_min=10"]),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", []),
    "ray": (
        "hydra_plugins.hydra_ray_launcher",
        ["+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false"],
    ),
}


@pytest.mark.slow  # starts processes
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_launcher_runs_two_jobs(data_dir, tmp_path, launcher):
    plugin, options = LAUNCHERS[launcher]
    pytest.importorskip(plugin, reason=f"the {launcher} launcher plugin is not installed (hwr[launchers])")
    if launcher == "submitit_slurm" and not shutil.which("sbatch"):
        pytest.skip("no SLURM here (sbatch not found): submitit_slurm can only be tested on a cluster")
    sweep = tmp_path / "sweep"
    run = run_script(
        "train.py", "-m", "debug=fdr", "model=mlp", "seed=1,2", f"hydra/launcher={launcher}", *options,
        "callbacks.progress_bar=null", f"hydra.sweep.dir={sweep}", data_dir=data_dir, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    rows = read_csv(sweep / "summary.csv")
    assert sorted(r["job"] for r in rows) == ["0", "1"] and {r["status"] for r in rows} == {"completed"}
    seeds = {json.loads((sweep / r["job"] / "metrics.json").read_text())["seed"] for r in rows}
    assert seeds == {1, 2}


@pytest.mark.slow  # starts processes
def test_ddp_multirun_gives_one_folder_per_training(data_dir, tmp_path):
    """Two DDP processes (gloo on CPU) per job, two jobs: two folders, each complete."""
    sweep = tmp_path / "sweep"
    run = run_script(
        "train.py", "-m", "seed=1,2", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "debug=limit", "trainer.max_epochs=2", "model=mlp", "callbacks.progress_bar=null",
        f"hydra.sweep.dir={sweep}", data_dir=data_dir, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]  # no stray folders
    assert not (tmp_path / "outputs").exists()  # the children did not make runs of their own
    for job in ("0", "1"):
        folder = sweep / job
        assert (folder / "train_rank1.log").is_file()  # rank 1 ran, in this folder
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["epochs"] == 2
        events = list((folder / "tensorboard").glob("events.out.tfevents.*"))
        assert events and all(e.parent == folder / "tensorboard" for e in events)
    # The test ran once, on the whole test set: eval.py on the same checkpoint agrees.
    best = sweep / "0" / "checkpoints" / "best.ckpt"
    checked = evaluate(make_config("eval", [f"ckpt_path={best}"], data_dir, tmp_path / "eval"))
    assert checked["test/acc"] == json.loads((sweep / "0" / "metrics.json").read_text())["test/acc"]


def test_summary_lists_jobs_killed_before_metrics(tmp_path):
    done, killed = tmp_path / "0", tmp_path / "1"
    (killed / ".hydra").mkdir(parents=True)
    (killed / ".hydra" / "overrides.yaml").write_text("- seed=2\n- model=mlp\n")
    done.mkdir()
    (done / "metrics.json").write_text(
        json.dumps({"val/acc_best": 0.9, "overrides": ["seed=1", "model=mlp"]})
    )
    rows, table = summarize_sweep(tmp_path)
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "incomplete")]
    assert rows[1]["overrides"] == "seed=2 model=mlp" and "killed" in rows[1]["error"]
    assert (tmp_path / "summary.csv").is_file() and "incomplete" in table
