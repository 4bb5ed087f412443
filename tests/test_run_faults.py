"""Faults of the run shell as a new user meets them on the command line: a full disk while a
checkpoint is written, two runs started into one folder, overwrite=true beside the user's own
files, a resume that changes the network, a training that diverges, bad values, a class list
given on the command line. Each test runs train.py (eval.py) as a user does and reads what it
left: the exit status, the last line on stderr, the run folder's files."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, SMALL_CNN, glyphs, run_script

from hwr.data.idx import write_idx

QUIET = "callbacks.progress_bar=null"


def start_train(args: list[str], data_dir: Path, cwd: Path, name: str, **popen) -> subprocess.Popen:
    """Start `train.py *args` in `cwd`, its stdout and stderr to cwd/<name>.out and .err."""
    env = {**os.environ, "HWR_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    with open(cwd / f"{name}.out", "w") as out, open(cwd / f"{name}.err", "w") as err:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env, stdout=out, stderr=err, **popen
        )


def last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else ""


def assert_one_line_error(stderr: str, *needles: str) -> str:
    """The command ended with one `error:` line holding every needle, and no traceback."""
    line = last_line(stderr)
    assert "Traceback" not in stderr, stderr[-3000:]
    assert line.startswith("error: "), stderr[-3000:]
    for needle in needles:
        assert needle in line, line
    return line


def files_of(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def record(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


# ---- 1. a full disk while a checkpoint is written ------------------------------------------
FILE_LIMIT = 20_000  # bytes: more than metrics.json or the manifest, less than a checkpoint


@pytest.mark.slow  # starts processes
@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs resource.prlimit (Linux)")
def test_a_full_disk_during_a_checkpoint_keeps_the_earlier_ones_and_the_run_resumes(data_dir, tmp_path):
    run = tmp_path / "run"
    # small batches: an epoch takes long enough that the limit is set well before the next
    # checkpoint (with larger ones, a fast machine can finish training inside the poll)
    args = [*SMALL_CNN, "trainer.max_epochs=3", "data.batch_size=8", QUIET, f"hydra.run.dir={run}"]
    # the limit makes a write past it fail with EFBIG ("File too large"), as a full disk fails a
    # write; ignoring SIGXFSZ keeps the kernel from killing the process for it instead
    proc = start_train(
        args, data_dir, tmp_path, "full", preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    )
    ckpts = run / "checkpoints"
    deadline = time.time() + 240
    while not (ckpts / "last.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, (tmp_path / "full.err").read_text()[-3000:]
    try:
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    finally:
        code = proc.wait(timeout=240)
    stderr = (tmp_path / "full.err").read_text()
    assert (ckpts / "last.ckpt").stat().st_size > 5 * FILE_LIMIT  # the next one cannot be written
    assert code == 1, stderr[-3000:]
    line = assert_one_line_error(stderr, "error: cannot write ")
    # the checkpoint it was writing, and what that file is
    written = rf"error: cannot write {re.escape(str(ckpts))}/(best|last)\.ckpt \(.*checkpoint"
    assert re.match(written, line), line

    # what the run saved before is intact, and nothing is half-written under its final name
    for name in ("best.ckpt", "last.ckpt"):
        assert "state_dict" in torch.load(ckpts / name, weights_only=True), name
    for path in run.rglob("*"):
        if path.suffix == ".ckpt":
            torch.load(path, weights_only=True)
        elif path.suffix == ".json":
            json.loads(path.read_text())
    assert not list(run.rglob("*.tmp")), files_of(run)
    failed = record(run)
    assert failed["status"] == "failed" and str(ckpts) in failed["error"], failed

    # space again (a new process has no limit): the run continues from its last.ckpt
    resumed = run_script("train.py", f"resume={run}", QUIET, data_dir=data_dir, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = record(run)
    assert done["status"] == "completed" and done["epochs"] == 3, done


# ---- 2. two runs started into one folder ---------------------------------------------------
@pytest.mark.slow  # starts processes
def test_two_runs_started_into_one_folder_leave_it_to_one_of_them(data_dir, tmp_path):
    run = tmp_path / "run"
    common = ["model=mlp", "trainer.max_epochs=3", QUIET, f"hydra.run.dir={run}"]
    seeds = (1, 2)
    procs = [start_train([*common, f"seed={s}"], data_dir, tmp_path, f"seed{s}") for s in seeds]
    codes = [p.wait(timeout=300) for p in procs]
    errs = [(tmp_path / f"seed{s}.err").read_text() for s in seeds]
    assert sorted(codes) == [0, 1], "\n---\n".join(e[-2000:] for e in errs)
    won = codes.index(0)
    seed, loser_err = seeds[won], errs[1 - won]
    line = assert_one_line_error(loser_err)
    assert "is in use by another hwr run" in line or "holds another run" in line, line

    # every file of the folder is the winner's
    assert record(run)["seed"] == seed and record(run)["status"] == "completed"
    assert re.search(rf"^seed: {seed}$", (run / ".hydra" / "config.yaml").read_text(), re.M)
    assert f"seed={seed}" in (run / ".hydra" / "overrides.yaml").read_text()
    tree = (run / "config_tree.log").read_text()
    assert len(re.findall(r"^CONFIG$", tree, re.M)) == 1, tree  # one tree, not two
    assert re.search(rf"── seed\n\S*\s+└── {seed}\n", tree), tree
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # no -v1
    events = [p.name for p in (run / "tensorboard").rglob("events.out.tfevents.*")]
    # TensorBoard names its files events.out.tfevents.<time>.<host>.<pid>.<n>
    assert events and all(re.search(rf"\.{procs[won].pid}\.\d+$", name) for name in events), events


# ---- 3. overwrite=true keeps the user's own files ------------------------------------------
@pytest.mark.slow  # starts processes
def test_overwrite_replaces_the_run_and_keeps_the_users_files(data_dir, tmp_path):
    run = tmp_path / "run"
    common = ["model=mlp", "trainer.max_epochs=1", QUIET, f"hydra.run.dir={run}"]
    first = run_script("train.py", *common, "seed=1", data_dir=data_dir, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    mine = {
        "checkpoints/my_important.ckpt": b"weights I trained elsewhere\n",
        "report/my_figure.png": b"\x89PNG my figure\n",
        "notes.txt": b"what I tried\n",
    }
    for name, content in mine.items():
        (run / name).write_bytes(content)

    again = run_script("train.py", *common, "seed=2", "overwrite=true", data_dir=data_dir, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    for name, content in mine.items():
        assert (run / name).is_file() and (run / name).read_bytes() == content, (name, files_of(run))
    new = record(run)
    assert new["status"] == "completed" and new["seed"] == 2, new
    for name in ("best.ckpt", "last.ckpt"):
        assert "state_dict" in torch.load(run / "checkpoints" / name, weights_only=True)
    assert (run / "report").is_dir() and len(list((run / "report").iterdir())) > 1  # the new report too


# ---- 4. a resume that would change the network is refused ----------------------------------
@pytest.mark.slow  # starts processes
def test_a_resume_with_another_network_is_refused_and_changes_nothing(data_dir, tmp_path):
    run = tmp_path / "run"
    first = run_script(
        "train.py", "model=mlp", "model.scheduler=null", "trainer.max_epochs=1", QUIET,
        f"hydra.run.dir={run}", data_dir=data_dir, cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    before = files_of(run)
    manifest_file = run / ".hwr" / "manifest.json"
    manifest = manifest_file.read_text() if manifest_file.is_file() else None

    refused = run_script("train.py", f"resume={run}", "model=cnn", QUIET, data_dir=data_dir, cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert_one_line_error(refused.stderr, "error: resume=", "model.net")
    assert files_of(run) == before  # nothing recorded: no .hydra/resumed_*, no new events
    assert not list((run / ".hydra").glob("resumed_*"))
    assert manifest is not None and manifest_file.read_text() == manifest

    resumed = run_script(
        "train.py", f"resume={run}", "trainer.max_epochs=2", QUIET, data_dir=data_dir, cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = record(run)
    assert done["status"] == "completed" and done["epochs"] == 2, done


# ---- 5. a diverging training stops and says so ---------------------------------------------
@pytest.mark.slow  # starts processes
def test_a_diverging_training_exits_3_and_keeps_finite_checkpoints(data_dir, tmp_path):
    # lr=10 is the highest the validation accepts (lr=1e9 is refused up front); plain SGD at
    # it turns the loss into NaN within two epochs of the fixture (AdamW's steps stay bounded)
    run = tmp_path / "run"
    diverged = run_script(
        "train.py", "model=mlp", "model.optimizer._target_=torch.optim.SGD", "model.optimizer.lr=10",
        "model.scheduler=null", "trainer.max_epochs=2", QUIET, f"hydra.run.dir={run}",
        data_dir=data_dir, cwd=tmp_path,
    )  # fmt: skip
    assert diverged.returncode == 3, diverged.stderr[-3000:]
    line = assert_one_line_error(diverged.stderr, "lower the learning rate")
    assert re.match(r"error: training diverged at step \d+: ", line), line
    failed = record(run)
    assert failed["status"] == "diverged" and "diverged at step" in failed["error"], failed
    for path in (run / "checkpoints").glob("*.ckpt") if (run / "checkpoints").is_dir() else []:
        weights = torch.load(path, weights_only=True)["state_dict"]
        assert all(bool(torch.isfinite(w).all()) for w in weights.values()), path


# ---- 6. bad values: one line naming the key, nothing written -------------------------------
@pytest.mark.slow  # starts processes
@pytest.mark.parametrize(
    "arg,message",
    [
        ("seed=-1", "seed=-1"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1"),
        ("model.net.dropout=1.5", "model.net.dropout=1.5"),
        ("trainer.max_epoch=1", "did you mean trainer.max_epochs"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(data_dir, tmp_path, arg, message):
    bad = run_script(
        "train.py", "model=mlp", "trainer.max_epochs=1", QUIET, arg, data_dir=data_dir, cwd=tmp_path
    )
    assert bad.returncode == 1, bad.stderr[-3000:]
    assert_one_line_error(bad.stderr, message)
    assert not list(tmp_path.glob("outputs/**/metrics.json"))
    assert not list(tmp_path.glob("outputs/**/*.ckpt"))


# ---- 7. class names given as a list on the command line ------------------------------------
CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.mark.slow  # starts processes
def test_an_idx_set_with_a_class_list_trains_tests_and_evaluates(data_dir, tmp_path):
    folder = tmp_path / "idx"
    for part, n, seed in (("train", 300, 1), ("test", 100, 2)):
        images, labels = glyphs(n, len(CLASSES), seed)
        write_idx(folder / f"{part}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{part}-labels-idx1-ubyte.gz", labels)
    run = tmp_path / "run"
    trained = run_script(
        "train.py", "data=idx", "model=mlp", "trainer.max_epochs=1", QUIET, f"hydra.run.dir={run}",
        *(f"data.{part}_{kind}={folder}/{part}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"
          for part in ("train", "test") for kind in ("images", "labels")),
        f"data.classes=[{','.join(CLASSES)}]",
        data_dir=data_dir, cwd=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    done = record(run)
    assert done["status"] == "completed" and "test/acc" in done, done
    best = run / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(best, weights_only=True)  # plain lists and strings: nothing to unpickle
    assert list(checkpoint["hyper_parameters"]["class_names"]) == CLASSES

    evaluated = run_script(
        "eval.py", f"ckpt_path={best}", "+trainer.enable_progress_bar=false", data_dir=data_dir, cwd=tmp_path
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    [metrics] = tmp_path.glob("outputs/eval/runs/*/metrics.json")
    result = json.loads(metrics.read_text())
    assert result["status"] == "completed" and result["test/acc"] == pytest.approx(done["test/acc"]), result
