"""Resume after a crash, reproducibility: the guarantees a long run relies on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, make_config, run_script, train_until_last_checkpoint
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hwr.commands.train import train
from hwr.errors import HwrError
from hwr.runs.resume import LAST, changed_keys, newest_run, recorded_overrides, refused

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
    # no version_1/ of Lightning's and no HPARAMS subfolder: both sessions are in the run's own folder
    assert [d.name for d in (run / "tensorboard").iterdir() if d.is_dir()] == []


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


def test_the_newest_run_and_its_latest_overrides_are_found(tmp_path):
    runs = tmp_path / "outputs" / "train" / "runs"
    fake_run(runs, "a", ["model=mlp"], mtime=1_000)
    newest = fake_run(runs, "b", ["model.net.head=[24]", "trainer.max_epochs=4"], mtime=2_000)
    assert newest_run(runs) == newest
    assert recorded_overrides(newest) == ["model.net.head=[24]", "trainer.max_epochs=4"]
    # a resumed session's overrides are the run's latest: resuming again keeps its changes
    session = newest / ".hydra" / "resumed_2026-01-01_00-00-00"
    session.mkdir()
    OmegaConf.save(
        OmegaConf.create(["model.net.head=[24]", "trainer.max_epochs=6"]), session / "overrides.yaml"
    )
    assert "trainer.max_epochs=6" in recorded_overrides(newest)


def test_a_resume_may_extend_the_schedule_and_nothing_else(tmp_path):
    before = OmegaConf.create(
        {"model": {"net": {"channels": [8]}, "optimizer": {"lr": 0.1}}, "trainer": {"max_epochs": 2}}
    )
    after = OmegaConf.create(
        {"model": {"net": {"channels": [16]}, "optimizer": {"lr": 0.1}}, "trainer": {"max_epochs": 5}}
    )
    assert changed_keys(before, after) == ["model.net.channels", "trainer.max_epochs"]
    assert refused(changed_keys(before, after)) == ["model.net.channels"]
    moved = OmegaConf.create({"model": {"_target_": "hwr.classifier.Classifier"}})
    assert (
        changed_keys(moved, OmegaConf.create({"model": {"_target_": "hwr.training.classifier.Classifier"}}))
        == []
    )


def test_resume_errors_name_the_problem(tmp_path, data_dir):
    folder = fake_run(tmp_path / "runs", "a", [], mtime=1_000)
    with pytest.raises(HwrError, match=r"resume=.*: no checkpoints/last.ckpt there"):
        train(make_config("train", [f"resume={tmp_path}"], data_dir, tmp_path / "x"))
    with pytest.raises(HwrError, match="resume=.*nope: there is no such folder"):
        train(make_config("train", [f"resume={tmp_path / 'nope'}"], data_dir, tmp_path / "x"))
    with pytest.raises(HwrError, match="not both"):
        train(make_config("train", [f"resume={folder}", "ckpt_path=other.ckpt"], data_dir, tmp_path / "x"))
    assert not (tmp_path / "x").exists()  # a refused resume writes nothing


def test_a_resume_continues_the_run_in_its_folder_and_refuses_another_network(data_dir, tmp_path):
    common = ["model=mlp", "data.batch_size=64", "report=false", "model.scheduler=null"]
    run = tmp_path / "run"
    first = train(make_config("train", [*common, "trainer.max_epochs=1"], data_dir, run))
    manifest = (run / ".hwr" / "manifest.json").read_text()
    with pytest.raises(HwrError, match=r"resume=.* would change model.net.hidden"):
        train(
            make_config(
                "train", [*common, "model.net.hidden=[64]", f"resume={run}"], data_dir, tmp_path / "x"
            )
        )
    assert (run / ".hwr" / "manifest.json").read_text() == manifest  # refused: nothing recorded
    second = train(
        make_config("train", [*common, "trainer.max_epochs=2", f"resume={run}"], data_dir, tmp_path / "y")
    )
    assert (first["epochs"], second["epochs"]) == (1, 2) and second["output_dir"] == str(run.absolute())
    assert len(list((run / ".hydra").glob("resumed_*/config.yaml"))) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_one_cycle_run_is_not_made_longer(data_dir, tmp_path):
    run = tmp_path / "run"
    train(make_config("train", ["model=mlp", "trainer.max_epochs=1", "report=false"], data_dir, run))
    manifest = (run / ".hwr" / "manifest.json").read_text()
    with pytest.raises(HwrError, match=r"trainer.max_epochs=3 needs about .* one-cycle schedule ends after"):
        train(
            make_config(
                "train", ["model=mlp", "trainer.max_epochs=3", f"resume={run}"], data_dir, tmp_path / "x"
            )
        )
    assert (run / ".hwr" / "manifest.json").read_text() == manifest


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


def test_ckpt_path_last_with_a_named_folder_continues_that_folder(data_dir, tmp_path):
    """`ckpt_path=last hydra.run.dir=<dir>` (here: the folder a composed config names) means the
    run in that folder, not the newest run of the task."""
    common = ["model=mlp", "data.batch_size=64", "report=false", "model.scheduler=null"]
    run = tmp_path / "run"
    train(make_config("train", [*common, "trainer.max_epochs=1"], data_dir, run))
    other = train(make_config("train", [*common, "trainer.max_epochs=1"], data_dir, tmp_path / "newer"))
    again = train(make_config("train", [*common, "trainer.max_epochs=2", "ckpt_path=last"], data_dir, run))
    assert again["output_dir"] == str(run.absolute()) and again["epochs"] == 2
    assert (
        other["epochs"] == 1 and json.loads((tmp_path / "newer" / "metrics.json").read_text())["epochs"] == 1
    )
