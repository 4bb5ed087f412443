"""Multiruns: summary table, failed jobs as rows, seed groups."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, make_config, run_script

from hwr.commands.eval import evaluate
from hwr.evaluation.results import summarize_sweep


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


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


OPTUNA_ARGS = ["hparams_search=mnist_optuna", "model=mlp", "debug=fdr", "callbacks.progress_bar=null"]


def load_trials(optuna, study_dir: Path) -> list:
    study = optuna.load_study(study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'optuna.db'}")
    return study.trials


def assert_distinct_trials(trials: list, study_dir: Path, n: int) -> None:
    """n completed trials, no two with the same parameters, each in its own folder trial_<n>."""
    assert len(trials) == n and all(t.state.name == "COMPLETE" for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == n  # no replayed parameters
    folders = sorted(p.parent.name for p in study_dir.glob("*/metrics.json"))
    assert folders == [f"trial_{i:03d}" for i in range(n)]
    for trial in trials:  # trial_<n> ran trial n; its folder is not among the recorded task overrides
        overrides = json.loads((study_dir / f"trial_{trial.number:03d}" / "metrics.json").read_text())
        assert {f"{k}={v}" for k, v in trial.params.items()} <= set(overrides["overrides"])
        assert not any(o.startswith("hydra.") for o in overrides["overrides"])


@pytest.mark.slow  # starts processes
def test_optuna_study_is_stored_and_continued(data_dir, tmp_path):
    optuna = pytest.importorskip("optuna", reason="the sweeps extra (hwr[sweeps]) is not installed")
    args = [*OPTUNA_ARGS, "hydra.sweeper.n_trials=2", f"paths.log_dir={tmp_path / 'out'}"]
    first = run_script("train.py", *args, data_dir=data_dir, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    study_dir = tmp_path / "out" / "debug" / "optuna" / "mnist_mlp"
    again = run_script("train.py", *args, data_dir=data_dir, cwd=tmp_path)  # the same command continues it
    assert again.returncode == 0, again.stderr[-2000:]
    # both sessions sampled start-up (random) trials, with the same seed: still no replay
    assert_distinct_trials(load_trials(optuna, study_dir), study_dir, 4)
    best = (study_dir / "optimization_results.yaml").read_text()
    assert "best_params" in best and "model.optimizer.lr" in best
    assert "Best parameters" in again.stdout + again.stderr
    assert len(read_csv(study_dir / "summary.csv")) == 4


@pytest.mark.slow  # starts processes
def test_optuna_sessions_in_parallel_share_one_study(data_dir, tmp_path):
    """Two fresh sessions started at once on one (not yet existing) study: parallel workers.
    One trial each keeps it short: they create the database, ask and write at the same time."""
    optuna = pytest.importorskip("optuna", reason="the sweeps extra (hwr[sweeps]) is not installed")
    env = {**os.environ, "HWR_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(ROOT / "train.py"), *OPTUNA_ARGS, "hydra.sweeper.n_trials=1"]
    command.append(f"paths.log_dir={tmp_path / 'out'}")
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = []
    try:
        for log in logs:
            with open(log, "w") as out:
                workers.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out))
        for worker, log in zip(workers, logs, strict=True):
            assert worker.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        for worker in workers:
            worker.kill()  # nothing left running after a failure (a no-op once exited)
    study_dir = tmp_path / "out" / "debug" / "optuna" / "mnist_mlp"
    assert_distinct_trials(load_trials(optuna, study_dir), study_dir, 2)


@pytest.mark.slow  # starts processes
def test_an_optuna_study_whose_trials_fail_ends_with_its_summary(data_dir, tmp_path):
    """A failed trial is recorded as failed (not told as a NaN, which optuna refuses); when
    every trial failed, the summary still says why, without the plugin's traceback."""
    optuna = pytest.importorskip("optuna", reason="the sweeps extra (hwr[sweeps]) is not installed")
    args = ["hparams_search=mnist_optuna", "model=cnn", "model.net.channels=[8,8,8,8,8,8]", "debug=fdr"]
    out = f"paths.log_dir={tmp_path / 'out'}"
    run = run_script("train.py", *args, "hydra.sweeper.n_trials=1", out, data_dir=data_dir, cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "error: 1 of 1 jobs failed" in run.stderr and "float-castable" not in run.stdout + run.stderr
    [trial] = load_trials(optuna, tmp_path / "out" / "debug" / "optuna" / "mnist_cnn")
    assert trial.state.name == "FAIL"


def test_optuna_trials_are_seeded_by_number_and_named_after_it(tmp_path, monkeypatch):
    """Without processes: the sampler, the job folders and the retried creation of the tables."""
    optuna = pytest.importorskip("optuna", reason="the sweeps extra (hwr[sweeps]) is not installed")
    from sqlalchemy.exc import IntegrityError

    from hydra_plugins.hwr_optuna_sweeper import _impl

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = {"_target_": "optuna.samplers.TPESampler", "seed": 7, "n_startup_trials": 5}

    def session(storage, n_trials: int) -> list[float]:
        """A session of n_trials (a fresh process would make a fresh sampler) on study `s`."""
        study = optuna.create_study(
            storage=storage, study_name="s", sampler=_impl.TrialSeededSampler(sampler), load_if_exists=True
        )
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=n_trials)
        return [t.params["x"] for t in study.trials]

    storage = optuna.storages.InMemoryStorage()
    session(storage, 2)
    both = session(storage, 2)  # continued: trials 2 and 3 are not trials 0 and 1 again
    assert len(set(both)) == 4
    assert session(optuna.storages.InMemoryStorage(), 4) == both  # one session of 4: the same

    sweeper = _impl.HwrOptunaSweeperImpl(
        sampler=None, direction="maximize", storage=None, study_name=None, n_trials=2, n_jobs=2,
        max_failure_rate=0.0, search_space=None, custom_search_space=None, params=None,
    )  # fmt: skip
    study = optuna.create_study()
    trials = [study.ask() for _ in range(2)]
    x = optuna.distributions.UniformDistribution(0, 1)
    jobs = sweeper._configure_trials(trials, {"x": x}, {"seed": 3})
    assert jobs[0] == (f"x={trials[0].params['x']}", "seed=3", "hydra.sweep.subdir=trial_000")
    assert jobs[1][-1] == "hydra.sweep.subdir=trial_001"

    # a session that loses the race to create the tables retries and finds them made
    made, rdb_storage = [], optuna.storages.RDBStorage

    def racing_storage(url):
        made.append(url)
        if len(made) == 1:
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE constraint failed"))
        return rdb_storage(url)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing_storage)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _impl.create_schema(url)
    assert made == [url, url] and (tmp_path / "optuna.db").is_file()


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
