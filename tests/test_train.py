"""End-to-end runs of train.py / eval.py on the tiny fixtures."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, SMALL_CNN, make_config, run_script, table_numbers
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hwr.commands.eval import evaluate
from hwr.commands.train import train
from hwr.config import group_options
from hwr.errors import HwrError
from hwr.inference.model import TrainedModel

EXPERIMENTS = group_options("experiment")


@pytest.mark.parametrize("data", ["mnist", "emnist", "english"])
# cnn_deep is the CNN class with more blocks: the quick loop runs cnn, the full suite both
@pytest.mark.parametrize("model", ["mlp", "cnn", pytest.param("cnn_deep", marks=pytest.mark.slow)])
def test_every_data_model_pair_runs(data_dir, tmp_path, data, model):
    out = tmp_path / "run"
    cfg = make_config("train", [f"data={data}", f"model={model}", "debug=fdr"], data_dir, out)
    metrics = train(cfg)
    assert metrics["data"] == data and metrics["global_step"] == 1  # one batch of each stage
    assert json.loads((out / "metrics.json").read_text())["test/acc"] == metrics["test/acc"]
    # the report counts the same tested batch: its confusion matrix gives back test/acc
    with open(out / "report" / "confusion_matrix.csv", newline="") as f:
        counts = [[int(v) for v in row[1:]] for row in list(csv.reader(f))[1:]]
    total, correct = sum(map(sum, counts)), sum(counts[i][i] for i in range(len(counts)))
    assert 0 < total <= cfg.data.eval_batch_size
    assert correct / total == pytest.approx(metrics["test/acc"], abs=1e-6)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_configs_run(data_dir, tmp_path, experiment):
    """Each named experiment composes and instantiates (one batch each on the fixtures)."""
    # fp32: mnist_speedrun asks for bf16, emulated (slow) on most CPUs; tests/test_speed.py trains it
    overrides = [f"experiment={experiment}", "debug=fdr", "trainer.precision=32-true"]
    if experiment in ("chars62_cnn", "personal"):  # the fixtures' EMNIST is Balanced (ByClass in real use)
        overrides.append("data.sources.emnist.split=balanced")
    if experiment == "personal":  # a person's folder: the English fixture stands in
        overrides.append(f"data.folder={data_dir / 'english'}")
    cfg = make_config("train", overrides, data_dir, tmp_path / "run")
    assert cfg.data._target_.startswith("hwr.data.") and cfg.model.net._target_.startswith("hwr.models.")
    metrics = train(cfg)
    assert metrics["data"] == cfg.data._target_.split(".")[2] and "test/acc" in metrics
    # the experiment's tags are in the run record, to find its runs by
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["tags"] == list(cfg.tags) and experiment.split("_")[0] in saved["tags"]


def test_early_stopping_is_opt_in(data_dir, tmp_path):
    """Off by default (schedules run their whole length); callbacks=early_stopping stops a run
    whose val/acc cannot improve after `patience` epochs."""
    common = ["model=mlp", "data.batch_size=16", "trainer.max_epochs=6", "test=false"]
    full = train(make_config("train", common, data_dir, tmp_path / "a"))
    stopping = ["callbacks=early_stopping", "callbacks.early_stopping.patience=1"]
    # min_delta above 1 means no epoch can count as an improvement
    stopped = train(
        make_config(
            "train", [*common, *stopping, "callbacks.early_stopping.min_delta=2"], data_dir, tmp_path / "b"
        )
    )
    assert full["epochs"] == 6 and stopped["epochs"] == 2


@pytest.mark.parametrize("debug", ["fdr", "limit", "overfit", "profiler"])
def test_debug_configs_run(data_dir, tmp_path, debug):
    out = tmp_path / "run"
    overrides = [f"debug={debug}", "model=mlp", "data.batch_size=16"]
    if debug in ("limit", "profiler"):
        overrides.append("trainer.max_epochs=2")
    if debug == "limit":
        overrides.append("trainer.limit_train_batches=3")
    metrics = train(make_config("train", overrides, data_dir, out))
    assert metrics["task"] == "debug" and "test/acc" in metrics
    if debug == "fdr":
        assert metrics["global_step"] == 1  # one batch of each stage
    if debug == "limit":
        assert metrics["global_step"] == 2 * 3  # epochs x limited batches
    if debug == "overfit":
        # its 30 epochs on the same 4 batches: the model has memorised them
        assert metrics["global_step"] == 30 * 4 and metrics["train/acc"] >= 0.95
    if debug == "profiler":
        assert any(out.glob("*profile*.txt"))


@pytest.fixture(scope="module")
def trained_run(data_dir, tmp_path_factory):
    """A real (short) CNN training on the tiny MNIST fixture, with checkpoints."""
    out = tmp_path_factory.mktemp("trained") / "run"
    cfg = make_config(
        "train",
        [
            "trainer.max_epochs=4",
            "data.batch_size=32",
            "model.optimizer.lr=0.003",
            "trainer.log_every_n_steps=10",
            *SMALL_CNN,
        ],  # fmt: skip
        data_dir,
        out,
    )
    return out, train(cfg)


def test_training_learns_and_writes_the_run_folder(trained_run):
    out, metrics = trained_run
    assert metrics["test/acc"] > 0.9  # chance is 0.1
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("val/acc_best", "test/acc", "test/f1", "test/acc_top5", "epochs", "test_ckpt"):
        assert key in saved
    assert saved["epochs"] == 4
    assert saved["test_ckpt"].endswith("checkpoints/best.ckpt")
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()


def test_tensorboard_has_scalars_and_hparams(trained_run):
    out, metrics = trained_run
    # fit and test may write separate event files into the run's folder: read them all
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {
        "train/loss",
        "train/acc",
        "train/lr",
        "train/time_s",
        "val/loss",
        "val/acc",
        "val/acc_best",
        "test/acc",
        "test/f1",
    } <= scalars
    assert not {"epoch", "lr-AdamW", "hp_metric"} & scalars  # housekeeping that led Time Series
    assert acc.Scalars("test/acc")[-1].value == pytest.approx(metrics["test/acc"])
    val_acc = [e.value for e in acc.Scalars("val/acc")]
    assert len(val_acc) == 4 and metrics["val/acc_best"] == pytest.approx(max(val_acc))
    # the learning rate of the one-cycle schedule, per logging interval (10 steps), not per epoch
    lr = [e.value for e in acc.Scalars("train/lr")]
    assert len(lr) > 4 and len(set(lr)) == len(lr)
    assert acc.Scalars("train/time_s")[-1].value == pytest.approx(metrics["train_time_s"], abs=0.01)


def test_hparams_tab_shows_the_metrics_that_matter(trained_run):
    """One HPARAMS trial per run, in the run's own event folder (no subfolder: TensorBoard lists
    the run once): four setting columns, the objective first among the metrics, its hyperparameters
    and its end status."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    out, metrics = trained_run
    assert not [p for p in (out / "tensorboard").iterdir() if p.is_dir()]
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [h.display_name for h in experiment.hparam_infos] == ["model", "lr", "epochs", "augment"]
    assert [m.display_name for m in experiment.metric_infos][:5] == [
        "objective (val/acc_best)", "test/acc", "test/acc_casefold", "test/f1_macro", "train_time_s",
    ]  # fmt: skip
    assert experiment.metric_infos[0].name.tag == "val/acc_best"  # the curve itself, no copy
    assert acc.Scalars("test/f1_macro")[-1].value == pytest.approx(metrics["test/f1_macro"])
    assert acc.Scalars("test/f1_macro")[-1].step == metrics["global_step"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["1 model"].string_value == "CNN · mnist" and hp["2 lr"].number_value == pytest.approx(0.003)
    assert hp["model/net/class"].string_value == "CNN"
    assert hp["data/class"].string_value == "MNISTDataModule"
    assert hp["trainer/max_epochs"].number_value == 4
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
    assert end.session_end_info.status == api_pb2.STATUS_SUCCESS
    # the same settings in Lightning's hparams.yaml (hwr fills it; Lightning alone leaves it "{}")
    assert "model/optimizer/lr: 0.003" in (out / "tensorboard" / "hparams.yaml").read_text()


def test_eval_reproduces_test_accuracy(trained_run, data_dir, tmp_path):
    out, metrics = trained_run
    ckpt = out / "checkpoints" / "best.ckpt"
    cfg = make_config("eval", [f"ckpt_path={ckpt}", "data=mnist"], data_dir, tmp_path / "eval")
    result = evaluate(cfg)
    assert result["test/acc"] == pytest.approx(metrics["test/acc"])
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/acc"] == result["test/acc"]


def test_eval_refuses_mismatched_classes(trained_run, data_dir, tmp_path):
    out, _ = trained_run
    cfg = make_config(
        "eval", [f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", "data=emnist"], data_dir, tmp_path / "eval"
    )
    with pytest.raises(Exception, match=r"data=emnist has 37 classes the checkpoint does not predict \(A, "):
        evaluate(cfg)


def test_eval_defaults_to_the_training_data(trained_run, data_dir, tmp_path):
    """Without data=, eval.py rebuilds the checkpoint's own DataModule, split included."""
    out, metrics = trained_run
    cfg = make_config("eval", [f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}"], data_dir, tmp_path / "eval")
    assert cfg.get("data") is None
    result = evaluate(cfg)
    assert result["data"] == "mnist" and result["test/acc"] == pytest.approx(metrics["test/acc"])


def test_checkpoints_from_before_the_record_still_load(trained_run, data_dir, tmp_path):
    """A checkpoint in the layout hwr's first versions wrote (no trained-on record; the
    DataModule hparams name the dataset and hold mean/std) loads with the same record, so the
    same preprocessing for predict/export/serve, and evaluates to the same accuracy."""
    out, metrics = trained_run
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    record = ckpt.pop("hwr_trained_on")
    mean, std = record["preprocessing"]["mean"], record["preprocessing"]["std"]
    ckpt["datamodule_hyper_parameters"].update(dataset="mnist", mean=mean, std=std)
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    new, legacy = TrainedModel.load(out / "checkpoints" / "best.ckpt", "cpu"), TrainedModel.load(old, "cpu")
    assert legacy.trained_on == new.trained_on and legacy.preprocessing == new.preprocessing
    result = evaluate(make_config("eval", [f"ckpt_path={old}"], data_dir, tmp_path / "eval"))
    assert result["test/acc"] == pytest.approx(metrics["test/acc"])
    del ckpt["datamodule_hyper_parameters"]["dataset"]
    torch.save(ckpt, old)
    with pytest.raises(HwrError, match="does not say what it was trained on"):
        TrainedModel.load(old, "cpu")


def test_eval_ensemble_and_tta(trained_run, data_dir, tmp_path):
    out, metrics = trained_run
    ckpts = out / "checkpoints"
    # Two copies of one model average to the same predictions; a glob finds best + last.
    twice = evaluate(
        make_config(
            "eval", [f"ckpt_path=[{ckpts / 'best.ckpt'},{ckpts / 'best.ckpt'}]"], data_dir, tmp_path / "a"
        )
    )
    assert twice["model"] == "Ensemble" and twice["test/acc"] == pytest.approx(metrics["test/acc"])
    both = evaluate(
        make_config("eval", [f"ckpt_path='{ckpts}/*.ckpt'", "tta_shift=1"], data_dir, tmp_path / "b")
    )
    saved = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert [Path(p).name for p in saved["test_ckpt"]] == ["best.ckpt", "last.ckpt"]
    assert both["test/acc"] > 0.8  # chance is 0.1: the averaged model still works


def test_eval_refuses_an_ensemble_over_different_splits(trained_run, data_dir, tmp_path):
    out, _ = trained_run
    best = out / "checkpoints" / "best.ckpt"
    ckpt = torch.load(best, weights_only=True)
    ckpt["hwr_trained_on"]["split"]["seed"] = 7
    torch.save(ckpt, tmp_path / "other.ckpt")
    cfg = make_config("eval", [f"ckpt_path=[{best},{tmp_path / 'other.ckpt'}]"], data_dir, tmp_path / "eval")
    with pytest.raises(HwrError, match=r"was trained on other data than .*best.ckpt \(seed differ\)"):
        evaluate(cfg)
    with pytest.raises(HwrError, match="no checkpoint matches"):
        evaluate(make_config("eval", [f"ckpt_path='{tmp_path}/*/none.ckpt'"], data_dir, tmp_path / "e2"))


def test_resume_from_checkpoint_continues(data_dir, tmp_path):
    common = ["data.batch_size=32", "model.scheduler=null", "model.optimizer.lr=0.003", *SMALL_CNN]
    first = train(make_config("train", ["trainer.max_epochs=2", *common], data_dir, tmp_path / "a"))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    resumed = train(
        make_config("train", ["trainer.max_epochs=3", f"ckpt_path={last}", *common], data_dir, tmp_path / "b")
    )
    assert first["epochs"] == 2 and resumed["epochs"] == 3
    assert resumed["global_step"] == first["global_step"] * 3 // 2  # continued, not restarted
    assert resumed["test/acc"] > 0.9
    assert resumed["val/acc_best"] >= first["val/acc_best"]  # the best survives the resume


def test_resume_past_the_one_cycle_schedule_is_refused(trained_run, data_dir, tmp_path):
    out, _ = trained_run
    last = out / "checkpoints" / "last.ckpt"
    cfg = make_config(
        "train",
        ["trainer.max_epochs=6", "data.batch_size=32", f"ckpt_path={last}", *SMALL_CNN],
        data_dir,
        tmp_path / "r",
    )
    with pytest.raises(
        HwrError,
        match=r"OneCycle schedule ends after \d+ steps but this run needs \d+; resume with the original",
    ):
        train(cfg)


@pytest.mark.slow  # starts processes
def test_cli_train_then_eval(data_dir, tmp_path):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    run = run_script(
        "train.py", "debug=fdr", "data=english", "model=mlp", cache, data_dir=data_dir, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-2000:]
    [metrics_file] = (tmp_path / "outputs" / "debug" / "runs").glob("*/metrics.json")
    trained = json.loads(metrics_file.read_text())
    assert trained["data"] == "english" and trained["epochs"] == 1
    assert (metrics_file.parent / ".hydra" / "config.yaml").is_file()
    # train.log keeps what the progress bar redraws away: one line per epoch, then the record
    log = (metrics_file.parent / "train.log").read_text()
    assert "[hwr][INFO] - epoch 1/1 (step 1): " in log and "val/acc_best" in log
    assert f"[hwr][INFO] - run record: {metrics_file}" in log

    ckpt = tmp_path / "model.ckpt"
    overrides = ["data=english", "model=mlp", "trainer.max_epochs=1", cache]
    trained_here = train(make_config("train", overrides, data_dir, tmp_path / "run"))
    (tmp_path / "run" / "checkpoints" / "best.ckpt").rename(ckpt)
    run = run_script("eval.py", f"ckpt_path={ckpt}", "data=english", cache, data_dir=data_dir, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    [eval_metrics] = (tmp_path / "outputs" / "eval" / "runs").glob("*/metrics.json")
    # eval.py rebuilds the training run's split and tests the same checkpoint: the same figure
    tested = json.loads(eval_metrics.read_text())["test/acc"]
    assert tested == pytest.approx(trained_here["test/acc"], abs=1e-6)
    logs = list(eval_metrics.parent.glob("*.log"))  # config_tree.log, eval.log: none left empty
    assert logs and all(p.stat().st_size > 0 for p in logs)


USER_ERRORS = [
    ("train", ["data.download=false"], "error: MNIST not found"),
    ("train", ["data=emnist", "data.split=bogus"], "error: data.split='bogus' is not an EMNIST split"),
    ("train", ["model.net.channels=[8,8,8,8,8,8]"], "error: 6 pooling blocks need images of at least 64"),
    ("train", ["ckpt_path=nope.ckpt"], "error: ckpt_path=nope.ckpt does not exist"),
    ("eval", [], "error: ckpt_path is required: add ckpt_path=<run>/checkpoints/best.ckpt"),
    ("eval", ["ckpt_path=nope.ckpt"], "error: ckpt_path=nope.ckpt does not exist"),
]


@pytest.mark.parametrize("name,args,message", USER_ERRORS)
def test_user_errors_are_one_clear_line(tmp_path, capsys, name, args, message):
    """What a command does with a user error: `error: <one line>` on stderr, exit status 1."""
    from hwr.runs.console import user_errors

    command = {"train": train, "eval": evaluate}[name]
    extra = ["debug=fdr"] if name == "train" else ["data=mnist"]
    cfg = make_config(name, [*extra, *args], tmp_path / "empty", tmp_path / "out")
    with pytest.raises(SystemExit) as exited, user_errors():
        command(cfg)
    printed = capsys.readouterr().err
    assert exited.value.code == 1 and printed.startswith(message) and printed.count("\n") == 1, printed


@pytest.mark.slow  # starts processes
@pytest.mark.parametrize("script,args,message", [USER_ERRORS[1], USER_ERRORS[4]])
def test_cli_user_errors_are_one_clear_line(tmp_path, script, args, message):
    """The same from the command line: status 1, the message last on stderr, no traceback."""
    run = run_script(
        f"{script}.py",
        "debug=fdr" if script == "train" else "data=mnist",
        *args,
        data_dir=tmp_path / "empty",
        cwd=tmp_path,
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith(message), run.stderr[-1500:]
    assert "Traceback" not in run.stderr


@pytest.mark.slow  # starts processes
def test_cli_bad_config_key(tmp_path):
    run = run_script("train.py", "data.no_such_key=1", data_dir=tmp_path, cwd=tmp_path)
    assert run.returncode != 0 and "no_such_key" in run.stderr


@pytest.mark.slow
def test_benchmark_smoke(data_dir, tmp_path):
    """Every part of the benchmark measures something: positive speeds, a step-time ratio, a
    start-up time (a few steps each; how fast is not checked, that it measured is)."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--data-dir", str(data_dir),
         "--seconds", "0.2", "--rounds", "1", "--workers", "0", "--steps", "3", "--warmup", "1",
         "--model", "mlp", "--markdown", str(tmp_path / "bench.md"),
         "--parts", "data", "train", "startup", "--arms", "plain,hwr"],  # more arms: test_speed.py
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    table = (tmp_path / "bench.md").read_text()
    loader, torchvision = (
        table_numbers(table, "hwr loader + float + normalise"),
        table_numbers(table, "torchvision DataLoader, 0 workers"),
    )
    assert loader[0] > 0 and torchvision == [pytest.approx(torchvision[0]), 1.0]  # the baseline is 1.0x
    plain = table_numbers(table, "plain PyTorch loop (same net, optimiser, schedule, loss, batches)")
    hwr = table_numbers(table, "hwr train.py path (Lightning, callbacks, logging)")
    # the ratio is printed to 2 decimals: within rounding of the two speeds' ratio
    assert plain[0] > 0 and hwr[0] > 0 and hwr[1] == pytest.approx(plain[0] / hwr[0], rel=0.02, abs=0.006)
    startup = float(table.split("launch to first training step: ")[1].split(" s")[0])
    assert 0 < startup < 600 and table in run.stdout
