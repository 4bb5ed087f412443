"""What a new user runs into: reused folders, signals, bad values, unwritable outputs, stale caches."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch
from helpers import make_config, train_until_last_checkpoint, write_english
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from hwr.commands.eval import evaluate
from hwr.commands.train import train
from hwr.config import compose_config
from hwr.data.english import EnglishDataModule
from hwr.errors import HwrError, root_cause

FAST = [
    "model=mlp",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=1",
]


def one_line_error(cfg, command) -> str:
    """The message a command prints for `command(cfg)`: one `error:` line (hwr.runs.console.user_errors)."""
    with pytest.raises(Exception) as raised:
        command(cfg)
    error = root_cause(raised.value)
    assert isinstance(error, HwrError), raised.value
    message = f"error: {error}"
    assert "\n" not in message, message
    return message


# ---- 1. a reused run folder is refused, not overwritten ------------------------------------
def test_a_second_run_in_the_same_folder_is_refused(data_dir, tmp_path):
    out = tmp_path / "same"
    first = train(make_config("train", FAST, data_dir, out))
    before = (out / "metrics.json").read_text()
    message = one_line_error(make_config("train", FAST, data_dir, out), train)
    assert "holds another run (.hwr/manifest.json)" in message and "overwrite=true" in message
    assert (out / "metrics.json").read_text() == before  # nothing of the first run was touched
    (out / "metrics.json").unlink()  # a killed run has checkpoints but no record yet
    assert "holds another run" in one_line_error(make_config("train", FAST, data_dir, out), train)
    assert not (out / "metrics.json").exists()  # the refusal wrote no failure record into it
    again = train(make_config("train", [*FAST, "overwrite=true"], data_dir, out))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # no -v1
    assert again["status"] == first["status"] == "completed"


# ---- 2. SIGTERM and Ctrl-C exit non-zero and record the run as interrupted -----------------
class Interrupt(Callback):
    """Raises what Lightning raises on SIGTERM (or Ctrl-C) after the second training batch."""

    def __init__(self, kind: str):
        self.kind = kind

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 2:
            raise SIGTERMException if self.kind == "sigterm" else KeyboardInterrupt


@pytest.mark.parametrize("kind,code", [("sigterm", 143), ("ctrl-c", 130)])
def test_an_interrupted_run_exits_non_zero_and_says_so(data_dir, tmp_path, kind, code, capsys):
    cfg = make_config(
        "train",
        [
            "model=mlp",
            "trainer.max_epochs=3",
            "+callbacks.interrupt._target_=test_user_faults.Interrupt",
            f"+callbacks.interrupt.kind={kind}",
        ],  # fmt: skip
        data_dir,
        tmp_path / "run",
    )
    sigint = signal.getsignal(signal.SIGINT)  # Lightning ignores Ctrl-C while it shuts down
    try:
        with pytest.raises(SystemExit) as exited:
            train(cfg)
    finally:
        signal.signal(signal.SIGINT, sigint)
    assert exited.value.code == code
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["global_step"] == 2
    # stopped in the first epoch: no last.ckpt yet, so no resume command is suggested
    assert "no checkpoint was saved yet" in capsys.readouterr().err


@pytest.mark.slow  # starts a process and signals it
def test_sigterm_from_a_scheduler_exits_143_and_the_run_resumes(data_dir, tmp_path):
    args = ["model=mlp", "trainer.max_epochs=40", "data.batch_size=16", "callbacks.progress_bar=null"]
    proc, runs = train_until_last_checkpoint(args, data_dir, tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, (tmp_path / "train.log").read_text()[-2000:]
    [record] = runs.glob("*/metrics.json")
    assert json.loads(record.read_text())["status"] == "interrupted"
    assert list(runs.glob("*/checkpoints/last.ckpt"))  # resumable


# ---- 3. bad values: one line naming the key -------------------------------------------------
@pytest.mark.parametrize(
    "args,message",
    [
        (["data.batch_size=0"], "error: data.batch_size=0 must be a whole number from 1 to"),
        (["data.batch_size=-5"], "error: data.batch_size=-5 must be a whole number from 1 to"),
        (["data.batch_size=abc"], "error: data.batch_size=abc must be a whole number"),
        (["model.optimizer.lr=-1"], "error: model.optimizer.lr=-1 must be a number from 1e-08 to 10"),
        (["model.optimizer.lr=abc"], "error: model.optimizer.lr=abc must be a number"),
        (["seed=abc"], "error: seed=abc must be a whole number from 0 to 4294967295 (e.g. seed=12345)"),
        (
            ["data.val_fraction=1.5"],
            "error: data.val_fraction=1.5 must be a number between 0 and 1 (neither included)",
        ),
    ],
)
def test_bad_training_values_name_the_key(data_dir, tmp_path, args, message):
    cfg = make_config("train", [*FAST, *args], data_dir, tmp_path / "out")
    assert one_line_error(cfg, train).startswith(message)


def test_a_file_that_is_not_a_checkpoint_says_so(data_dir, tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    message = one_line_error(
        make_config("train", [*FAST, f"ckpt_path={text}"], data_dir, tmp_path / "a"), train
    )
    assert message == f"error: ckpt_path={text} is not a checkpoint hwr can read (not a file torch saved)"
    cut = tmp_path / "cut.ckpt"
    torch.save({"state_dict": {}}, cut)
    cut.write_bytes(cut.read_bytes()[:40])  # truncated
    message = one_line_error(make_config("eval", [f"ckpt_path={cut}"], data_dir, tmp_path / "b"), evaluate)
    assert (
        message
        == f"error: ckpt_path={cut} is not a checkpoint hwr can read (truncated or corrupt: copy it again)"
    )


def test_serve_refuses_a_port_that_is_not_one(tmp_path):
    from hwr.commands.serve import serve

    cfg = compose_config("serve", ["ckpt_path=x.ckpt", "port=99999"])
    message = one_line_error(cfg, serve)
    assert message == "error: port=99999 must be a whole number from 1 to 65535 (e.g. port=8000)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_a_gpu_trainer_without_a_gpu_says_what_to_use(data_dir, tmp_path):
    cfg = make_config("train", [*FAST, "trainer=gpu"], data_dir, tmp_path / "out")
    assert "torch sees no CUDA GPU on this machine; use trainer=default" in one_line_error(cfg, train)
    cfg = make_config("train", [*FAST, "trainer.accelerator=tpu"], data_dir, tmp_path / "tpu")
    assert (
        one_line_error(cfg, train)
        == "error: trainer.accelerator=tpu must be one of auto, cpu, gpu, cuda, mps"
    )


def test_zero_epochs_is_not_a_completed_training(data_dir, tmp_path):
    overrides = ["model=mlp", "trainer.max_epochs=0", "test=false"]
    metrics = train(make_config("train", overrides, data_dir, tmp_path / "out"))
    assert metrics["status"] == "untrained"


# ---- 5. outputs that cannot be written: the work is not lost --------------------------------
def test_predictions_are_printed_before_an_unwritable_output_fails(english_run, data_dir, tmp_path, capsys):
    from hwr.commands.predict import predict

    out, _ = english_run
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    inputs = sorted((data_dir / "english").rglob("*.png"))[0]
    capsys.readouterr()
    cfg = compose_config(
        "predict",
        [
            f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}",
            f"inputs=[{inputs}]",
            f"output={blocker}/preds.csv",
            "json=true",
        ],
    )
    message = one_line_error(cfg, predict)
    assert (
        message.startswith(f"error: cannot write {blocker}/preds.csv (the predictions)")
        and "printed above" in message
    )
    assert json.loads(capsys.readouterr().out)["predictions"][0]["label"]  # the work was shown


def test_export_into_a_folder_it_cannot_create_names_the_path(english_run, tmp_path):
    from hwr.inference.export import export_model

    out, _ = english_run
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(HwrError, match=f"cannot write into {blocker}/sub"):
        export_model(out / "checkpoints" / "best.ckpt", "onnx", blocker / "sub" / "model.onnx")


# ---- 6. the English cache notices a replaced image ------------------------------------------
def test_a_replaced_image_of_the_same_size_is_decoded_again(tmp_path):
    root = write_english(tmp_path / "english")
    dm = EnglishDataModule(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    before = dm.cache_path()
    image = next(iter(sorted((root / "Img").glob("*.png"))))
    data = image.read_bytes()
    image.write_bytes(data[::-1][: len(data)])  # other bytes, same size
    os.utime(image, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert EnglishDataModule(data_dir=tmp_path, cache_dir=tmp_path / "cache").cache_path() != before


# ---- weak spots ------------------------------------------------------------------------------
def test_predict_rejects_top_k_zero_and_a_negative_shift(english_run, tmp_path):
    from hwr.commands.predict import predict
    from hwr.inference.model import TrainedModel

    out, _ = english_run
    ckpt = out / "checkpoints" / "best.ckpt"
    cfg = compose_config("predict", [f"ckpt_path={ckpt}", f"inputs=[{ckpt}]", "top_k=0"])
    assert one_line_error(cfg, predict).startswith("error: top_k=0 must be a whole number from 1 to 100")
    with pytest.raises(HwrError, match=r"tta_shift=-1 must be 0 \(off\)"):
        TrainedModel.load(ckpt, "cpu", tta_shift=-1)


def test_a_blank_image_is_flagged_not_named(english_run):
    from PIL import Image

    from hwr.inference.model import TrainedModel

    out, _ = english_run
    [blank] = TrainedModel.load(out / "checkpoints" / "best.ckpt", "cpu").predict(
        [Image.new("L", (64, 64), 255)]
    )
    assert blank.blank and blank.as_dict()["blank"] is True


def test_a_failed_download_leaves_the_data_folder_as_it_was(tmp_path, monkeypatch):
    import torchvision.datasets.utils

    from hwr.data.mnist import MNISTDataModule

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    with pytest.raises(HwrError, match="download failed"):
        MNISTDataModule(tmp_path, download=True).load_train()
    assert list(tmp_path.iterdir()) == []


# ---- what the terminal shows -----------------------------------------------------------------
def test_the_terminal_shows_the_run_not_lightnings_noise(
    data_dir, tmp_path, capsys, caplog, recwarn, monkeypatch
):
    import logging

    from hwr.runs.entry import prepare

    hwr_log = logging.getLogger("hwr")  # as it was before: the tests after this one use caplog on it
    monkeypatch.setattr(hwr_log, "propagate", hwr_log.propagate)
    monkeypatch.setattr(hwr_log, "handlers", list(hwr_log.handlers))
    prepare()
    out = tmp_path / "run"
    train(make_config("train", [*FAST, "objective=val/acc_best"], data_dir, out))
    printed = capsys.readouterr().out
    logged = caplog.text + " ".join(str(w.message) for w in recwarn)
    for noise in (
        "Tip:",
        "already configured with model summary",
        "LeafSpec",
        "smaller than the logging interval",
    ):
        assert noise not in logged, noise
    assert "Test metric" not in printed  # Lightning's own test table: hwr prints the same numbers
    table = printed[printed.index("train: mnist / MLP") :]
    rows = [line.split("│")[1].strip() for line in table.splitlines() if line.count("│") == 3]
    assert rows[:2] == ["val/acc_best", "test/acc"]  # the objective first, then test accuracy
    assert (
        "%" in table.splitlines()[[i for i, line in enumerate(table.splitlines()) if "test/acc " in line][0]]
    )
    assert f"run record: {out / 'metrics.json'}" in printed and f"report:     {out / 'report'}/" in printed


def test_an_unknown_label_in_english_csv_is_named(tmp_path, caplog):
    from helpers import ink_png

    root = write_english(tmp_path / "english")
    csv_path = root / "english.csv"
    lines = csv_path.read_text().splitlines()
    ink_png(root / "Img" / "extra.png", 1, 1)  # an image of its own (one image, one label)
    csv_path.write_text("\n".join([*lines, "Img/extra.png,O "]) + "\n")
    assert len(EnglishDataModule(data_dir=tmp_path).files.paths) == 41  # read, and warned about
    assert "1 label(s) outside the 62 characters" in caplog.text and "'O '" in caplog.text


def test_a_broken_test_file_fails_before_the_training(data_dir, tmp_path):
    """Found by the test pass after a whole training, it used to cost that training."""
    from helpers import write_mnist

    root = write_mnist(tmp_path / "data")
    [labels] = root.glob("**/t10k-labels-idx1-ubyte*")
    labels.write_bytes(b"not a gzip file")
    out = tmp_path / "out"
    message = one_line_error(make_config("train", FAST, tmp_path / "data", out), train)
    assert "t10k-labels" in message
    assert not (out / "checkpoints").exists()  # no training step was taken
    assert json.loads((out / "metrics.json").read_text())["status"] == "failed"  # the folder says why


def test_an_unknown_group_option_lists_the_options():
    from hydra.errors import MissingConfigException

    from hwr.runs.entry import config_error

    with pytest.raises(MissingConfigException) as raised:
        compose_config("train", ["model=nope"])
    message = config_error(raised.value, "train", ["model=nope"])
    assert message == "model=nope is not an option; choose from cnn, cnn_deep, mlp, resnet"


def test_a_mistyped_key_says_what_was_meant():
    from hydra.errors import ConfigCompositionException

    from hwr.runs.entry import config_error

    with pytest.raises(ConfigCompositionException) as raised:
        compose_config("train", ["trainer.max_epoch=1"])
    message = config_error(raised.value, "train", ["trainer.max_epoch=1"])
    assert message.startswith(
        "trainer.max_epoch is not a key of the config; did you mean trainer.max_epochs?"
    )
