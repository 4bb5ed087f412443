"""Resume after a crash, reproducibility: the guarantees a long run relies on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, make_config, run_script, train_until_last_checkpoint
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hwr.errors import HwrError
from hwr.train import train
from hwr.utils.resume import LAST, relaunch_argv

QUIET = "callbacks.progress_bar=null"


@pytest.mark.slow  # starts processes
def test_killed_run_resumes_in_its_own_folder(data_dir, tmp_path):
    args = [
        "trainer.max_epochs=4",
        "data.batch_size=16",
        "model.net.channels=[8,16]",
        "model.net.head=[24]",
        QUIET,
    ]
    proc, runs = train_until_last_checkpoint(args, data_dir, tmp_path)
    proc.send_signal(signal.SIGKILL)  # no cleanup, no final checkpoint: a crash
    proc.wait()
    [run] = list(runs.iterdir())
    assert not (run / "metrics.json").exists()
    original_config = (run / ".hydra" / "config.yaml").read_text()

    # `resume=true` finds the newest run of the task; the overrides come from that run.
    resumed = run_script("train.py", "resume=true", QUIET, data_dir=data_dir, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert list(runs.iterdir()) == [run]  # no second run folder
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 4 and metrics["status"] == "completed"
    assert (run / ".hydra" / "config.yaml").read_text() == original_config  # kept
    [resumed_config] = (run / ".hydra").glob("resumed_*/config.yaml")
    assert "- 24" in resumed_config.read_text()  # the original command's model, not the default
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    # One TensorBoard run: validation logged once per planned epoch, in order, no gap.
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    steps = sorted({int(e.step) for e in acc.Scalars("val/acc")})
    assert len(steps) == 4 and len({b - a for a, b in zip(steps, steps[1:], strict=False)}) == 1
    # no version_1/ of Lightning's: the only folder is the run's HPARAMS trial, both sessions in it
    assert [d.name for d in (run / "tensorboard").iterdir() if d.is_dir()] == ["mnist_CNN"]


@pytest.mark.slow  # starts processes
def test_resume_without_a_run_says_so(data_dir, tmp_path):
    for resume in ("resume=true", "ckpt_path=last"):  # two spellings of one request
        run = run_script("train.py", resume, "task_name=nothing", QUIET, data_dir=data_dir, cwd=tmp_path)
        assert run.returncode == 1
        assert "error: resume=true: no run under" in run.stderr and "has checkpoints/last.ckpt" in run.stderr
    assert not (tmp_path / "outputs" / "nothing" / "runs").exists() or not any(
        (tmp_path / "outputs" / "nothing" / "runs").glob("*/metrics.json")
    )


def fake_run(runs: Path, name: str, overrides: list[str], mtime: float) -> Path:
    """A run folder as train.py leaves it: .hydra/overrides.yaml and checkpoints/last.ckpt."""
    folder = runs / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    (folder / LAST).write_bytes(b"")
    os.utime(folder / LAST, (mtime, mtime))
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    return folder


def test_resume_relaunches_the_run_with_its_own_command_line(tmp_path):
    runs = tmp_path / "outputs" / "train" / "runs"
    fake_run(runs, "a", ["model=mlp"], mtime=1_000)
    newest = fake_run(runs, "b", ["model.net.head=[24]", "trainer.max_epochs=4"], mtime=2_000)
    log_dir = f"paths.log_dir={tmp_path / 'outputs'}"
    for ask in ("resume=true", "ckpt_path=last"):  # one request, and its alias
        argv = relaunch_argv([ask, log_dir, "trainer.max_epochs=6", "--cfg", "job"])
        assert argv[:2] == ["--cfg", "job"]  # flags pass through untouched
        assert set(argv[2:-1]) == {
            "model.net.head=[24]",  # the run's own override...
            "trainer.max_epochs=6",  # ...this command's on top...
            log_dir,
            f"resume='{newest}'",  # ...and the folder it continues, explicitly
            f"hydra.run.dir='{newest}'",
        }
        assert argv[-1].startswith("hydra.output_subdir=.hydra/resumed_")
    # a resumed session's overrides are the run's latest: resuming again keeps its changes
    session = newest / ".hydra" / "resumed_2026-01-01_00-00-00"
    session.mkdir()
    OmegaConf.save(
        OmegaConf.create(["model.net.head=[24]", "trainer.max_epochs=6"]), session / "overrides.yaml"
    )
    assert "trainer.max_epochs=6" in relaunch_argv([f"resume={newest}"])
    assert relaunch_argv(["model=mlp", "resume=null"]) == ["model=mlp", "resume=null"]  # no resume: unchanged


def test_resume_errors_name_the_problem(tmp_path, data_dir):
    with pytest.raises(HwrError, match=r"resume=true: no run under .*nothing/runs has checkpoints/last.ckpt"):
        relaunch_argv(["resume=true", "task_name=nothing", f"paths.log_dir={tmp_path}"])
    with pytest.raises(HwrError, match=r"resume=.*: no checkpoints/last.ckpt in"):
        relaunch_argv([f"resume={tmp_path}"])
    for multirun in (["-m"], ["hparams_search=mnist_optuna"], ["hydra.mode=MULTIRUN"]):
        with pytest.raises(HwrError, match="resume= continues one run"):
            relaunch_argv([*multirun, "resume=true"])
    with pytest.raises(HwrError, match="not both"):
        relaunch_argv([f"resume={tmp_path}", "ckpt_path=other.ckpt"])
    # a DDP child of a resumed run already has its folder: relaunching is done once
    child = [f"resume='{tmp_path}'", f"hydra.run.dir={tmp_path}", "hydra.output_subdir=null"]
    assert relaunch_argv(child) == child
    # train() itself refuses a resume that was not relaunched into its folder
    folder = fake_run(tmp_path / "runs", "a", [], mtime=1_000)
    cfg = make_config("train", [f"resume={folder}"], data_dir, tmp_path / "elsewhere")
    with pytest.raises(HwrError, match="relaunches into it"):
        train(cfg)


def test_same_seed_deterministic_runs_are_identical(data_dir, tmp_path):
    common = ["seed=7", "trainer.deterministic=true", "debug=limit", "trainer.max_epochs=2", "report=false",
              "data.augment.shift=2", "data.batch_size=16", "model.net.channels=[8,16]",
              "model.net.head=[32]"]  # fmt: skip
    first = train(make_config("train", common, data_dir, tmp_path / "a"))
    second = train(make_config("train", common, data_dir, tmp_path / "b"))
    for key in ("train/loss", "val/loss", "val/acc", "test/loss", "test/acc"):
        assert first[key] == second[key], key
    other = train(make_config("train", [*common[1:], "seed=8"], data_dir, tmp_path / "c"))
    assert other["train/loss"] != first["train/loss"]  # the seed matters: the test can fail


def test_run_folder_records_the_git_commit(data_dir, tmp_path):
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    metrics = train(make_config("train", ["debug=fdr", "model=mlp"], data_dir, tmp_path / "run"))
    saved = json.loads((tmp_path / "run" / "git.json").read_text())
    assert saved["commit"] == head == metrics["git_commit"]
    assert (tmp_path / "run" / "git.diff").exists() == saved["dirty"]
