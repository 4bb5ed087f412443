"""The run folder's one owner (hwr.runs.folder) and the atomic writes under it (hwr.files)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
import torch

from hwr.errors import FolderTaken, HwrError
from hwr.files import Folder, atomic_write, write_text
from hwr.runs.folder import LOCK, MANIFEST, OWNER_ENV, STATE, RunFolder
from hwr.runs.trainer import RunCheckpointIO


def test_a_claim_is_exclusive_while_the_run_lives_and_released_at_its_end(tmp_path):
    with RunFolder.claim(tmp_path / "run") as folder:
        assert (folder.path / STATE / LOCK).is_file()
        assert os.environ[OWNER_ENV].startswith(str(folder.path))  # what a DDP rank joins by
        with pytest.raises(FolderTaken, match=r"is in use by another hwr run \(pid \d+ on .*, since "):
            RunFolder.claim(tmp_path / "run", resume=True)  # even a resume waits for a live run
    assert not (tmp_path / "run" / STATE / LOCK).exists() and OWNER_ENV not in os.environ
    with RunFolder.claim(tmp_path / "run", resume=True):  # the run is over: it can be continued
        pass


def test_a_stale_lock_of_a_dead_process_is_named_and_taken_over(tmp_path, caplog):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock = tmp_path / "run" / STATE / LOCK
    lock.parent.mkdir(parents=True)
    lock.write_text(
        json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename, "started": "yesterday"})
    )
    with RunFolder.claim(tmp_path / "run"):
        assert f"the lock of pid {int(dead.stdout)} (started yesterday) is stale" in caplog.text


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    with RunFolder.claim(tmp_path / "run") as first:
        first.write_text("metrics.json", "{}")
    with pytest.raises(FolderTaken, match=r"holds another run \(.hwr/manifest.json\); .*overwrite=true"):
        RunFolder.claim(tmp_path / "run")
    assert (tmp_path / "run" / "metrics.json").read_text() == "{}"  # the refusal touched nothing
    legacy = tmp_path / "legacy"
    (legacy / ".hydra").mkdir(parents=True)
    (legacy / "metrics.json").write_text("{}")
    with pytest.raises(FolderTaken, match=r"holds another run \(metrics.json, .hydra\)"):
        RunFolder.claim(legacy)
    with pytest.raises(HwrError, match="kept no manifest of its files"):
        RunFolder.claim(legacy, overwrite=True)  # it cannot tell the run's files from yours
    assert sorted(p.name for p in legacy.iterdir()) == [".hwr", ".hydra", "metrics.json"]


def test_overwrite_removes_exactly_the_files_of_the_manifest(tmp_path):
    with RunFolder.claim(tmp_path / "run") as first:
        first.write_text("metrics.json", "{}")
        first.sub("checkpoints").write_bytes("best.ckpt", b"weights")
        first.sub("report").write_text("per_class.csv", "class\n")
    mine = {"checkpoints/my_important.ckpt": "mine", "report/my_figure.png": "mine", "notes.txt": "mine"}
    for name, text in mine.items():
        (tmp_path / "run" / name).write_text(text)
    with RunFolder.claim(tmp_path / "run", overwrite=True) as second:
        assert second.files == []
    left = sorted(
        p.relative_to(tmp_path / "run").as_posix() for p in (tmp_path / "run").rglob("*") if p.is_file()
    )
    assert left == sorted([*mine, f"{STATE}/{MANIFEST}"])
    assert all((tmp_path / "run" / name).read_text() == "mine" for name in mine)


def test_files_that_libraries_write_are_adopted_but_not_the_users(tmp_path):
    (tmp_path / "run" / "tensorboard").mkdir(parents=True)
    (tmp_path / "run" / "tensorboard" / "events.out.tfevents.1.mine").write_text("theirs")  # was there before
    with RunFolder.claim(tmp_path / "run") as folder:
        (folder.path / "tensorboard" / "events.out.tfevents.2.run").write_text("events")
        (folder.path / "train.log").write_text("log")
        folder.adopt()
        assert set(folder.files) == {"tensorboard/events.out.tfevents.2.run", "train.log"}
    saved = json.loads((tmp_path / "run" / STATE / MANIFEST).read_text())["files"]
    assert "tensorboard/events.out.tfevents.1.mine" not in saved


def test_a_joined_folder_writes_no_manifest(tmp_path):
    with RunFolder.claim(tmp_path / "run") as owner:
        rank1 = RunFolder.join(owner.path)
        rank1.written(owner.path / "x")
        assert rank1.files == [] and (owner.path / STATE / LOCK).is_file()
        rank1.release()  # a rank never releases its run's claim
        assert (owner.path / STATE / LOCK).is_file()


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = write_text(tmp_path / "metrics.json", '{"status": "completed"}')
    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(HwrError) as raised, atomic_write(path, "the run record", "w") as f:
        f.write('{"status": "fai')
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert str(raised.value) == (
        f"cannot write {path} (the run record): No space left on device; free some space"
    )
    assert path.read_text() == '{"status": "completed"}' and sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json"
    ]


def test_a_checkpoint_is_written_atomically_into_the_folder_and_recorded(tmp_path, monkeypatch):
    with RunFolder.claim(tmp_path / "run") as folder:
        io = RunCheckpointIO(folder)
        target = folder.path / "checkpoints" / "last.ckpt"
        io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
        assert "checkpoints/last.ckpt" in folder.files

        def disk_full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fsync", disk_full)  # the new checkpoint is written, then cannot be kept
        with pytest.raises(
            HwrError, match=r"cannot write .*last.ckpt \(the checkpoint last.ckpt\): No space left"
        ):
            io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
        monkeypatch.undo()
        assert torch.equal(torch.load(target, weights_only=True)["state_dict"]["w"], torch.ones(3))
        assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_a_plain_folder_writes_atomically_and_counts_subfolders(tmp_path):
    written = []

    class Recording(Folder):
        def written(self, path):
            written.append(path.relative_to(tmp_path).as_posix())

    Recording(tmp_path).sub("report").write_bytes("a.png", b"png")
    assert written == ["report/a.png"] and (tmp_path / "report" / "a.png").read_bytes() == b"png"


@pytest.mark.parametrize(
    "folder", ["/tmp/runs/2026-12-06_10-00-00", "/tmp/my runs/it's,[a]=b", "C:\\runs\\x\\"]
)
def test_a_ddp_rank_is_started_in_its_runs_folder_whatever_its_name(folder):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hwr.runs import ddp

    ddp._job = ddp.Job("train", ["model=mlp", "seed=3"], folder)
    try:
        command, _cwd = ddp.child_command(1)
    finally:
        ddp._job = None
    assert command[1:6] == ["-m", "hwr", "train", "model=mlp", "seed=3"]  # this job's overrides, no sweep
    [run_dir] = [a for a in command if a.startswith("hydra.run.dir=")]
    assert OverridesParser.create().parse_override(run_dir).value() == folder
    assert "hydra.mode=RUN" in command and "hydra.job.name=train_rank1" in command
