"""Optuna studies (`hparams_search=...`): the search space, seeded samplers, the journal
study shared by workers, pruning, trials whose process dies, and what the summary shows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import ROOT, free_port, read_csv, run_script, screenshot

optuna = pytest.importorskip("optuna", reason="the sweeps extra (hwr[sweeps]) is not installed")

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from hwr.errors import HwrError  # noqa: E402
from hwr.studies import space  # noqa: E402
from hwr.studies.report import study_sections  # noqa: E402
from hwr.studies.storage import ERROR, HEARTBEAT, HOST, JOURNAL, PID, fail_stale_trials, open_storage  # noqa: E402
from hwr.studies.sweeper import TrialSeededSampler, build_sampler  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
ARGS = ["hparams_search=mnist_optuna", "model=mlp", "callbacks.progress_bar=null"]
# three short epochs: something to prune
EPOCHS = ["debug=limit", "trainer.limit_train_batches=8", "trainer.limit_val_batches=2"]
STUDY = Path("out/debug/optuna/mnist_mlp")  # under the test's folder: paths.log_dir=out


def load(study_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=study_dir.name, storage=open_storage(str(study_dir / JOURNAL)))


def test_search_space_reads_hydra_sweep_syntax():
    params = {
        "model.optimizer.lr": "tag(log, interval(0.0003, 0.01))",
        "model.net.dropout": "interval(0, 0.4)",
        "data.batch_size": "choice(64, 128)",
        "data.augment.shift": "range(0, 3)",
        "model.net.channels": "choice([8,16],[16,32])",
        "seed": "7",
    }
    dists, fixed = space.search_space(
        params, ["model.net.dropout=0.1", "data.batch_size=choice(32,64)", "+x=1"]
    )
    assert dists["model.optimizer.lr"] == FloatDistribution(0.0003, 0.01, log=True)
    assert "model.net.dropout" not in dists  # fixed on the command line
    assert dists["data.batch_size"] == CategoricalDistribution([32, 64])  # the command line's choice wins
    assert dists["data.augment.shift"] == IntDistribution(0, 2)  # range's stop is excluded, as in -m
    assert dists["model.net.channels"].choices == ("[8,16]", "[16,32]")
    assert fixed == ["seed=7", "model.net.dropout=0.1", "+x=1"]
    assert space.grid({"s": dists["data.augment.shift"], "b": dists["data.batch_size"]}) == {
        "s": [0, 1, 2],
        "b": [32, 64],
    }
    with pytest.raises(HwrError, match=r"model.optimizer.lr: the grid sampler needs choice\(\) or range\(\)"):
        space.grid(dists)
    with pytest.raises(HwrError, match=r"lr: tag\(log, interval\(0.0, 1.0\)\) needs a lower bound above 0"):
        space.search_space({"lr": "tag(log, interval(0, 1))"}, [])


def test_trials_are_seeded_by_number(tmp_path):
    """Trial n is sampled with seed + n: a study started twice with one seed proposes the same
    first trials, and a continued study (a new process, a new sampler) never replays them."""
    tpe = {"_target_": "optuna.samplers.TPESampler", "seed": 7, "n_startup_trials": 5}

    def session(storage, name: str, n: int) -> list[float]:
        study = optuna.create_study(
            storage=storage, study_name=name, sampler=build_sampler(tpe, {}), load_if_exists=True
        )
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
        return [t.params["x"] for t in study.trials]

    journal = open_storage(str(tmp_path / JOURNAL))
    session(journal, "a", 2)
    continued = session(journal, "a", 2)
    assert len(set(continued)) == 4  # trials 2 and 3 are not 0 and 1 again
    assert session(journal, "b", 4) == continued  # one session of 4 on a fresh study: the same
    assert isinstance(build_sampler(tpe, {}), TrialSeededSampler)
    grid = build_sampler(
        {"_target_": "optuna.samplers.GridSampler", "seed": 1}, {"b": CategoricalDistribution([1, 2])}
    )
    study = optuna.create_study(sampler=grid)
    study.optimize(lambda t: t.suggest_categorical("b", [1, 2]), n_trials=2)
    assert sorted(t.params["b"] for t in study.trials) == [1, 2]


def test_trials_whose_process_is_gone_are_marked_failed(tmp_path):
    storage = open_storage(str(tmp_path / JOURNAL))
    study = optuna.create_study(storage=storage, study_name="s")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = os.uname().nodename
    killed, silent, alive = (study.ask() for _ in range(3))
    for trial, pid, beat in (
        (killed, gone.pid, time.time()),
        (silent, 1, time.time() - 3600),
        (alive, os.getpid(), time.time()),
    ):
        trial.storage.set_trial_system_attr(
            trial._trial_id, HOST, host if trial is not silent else "elsewhere"
        )
        trial.storage.set_trial_system_attr(trial._trial_id, PID, pid)
        trial.storage.set_trial_system_attr(trial._trial_id, HEARTBEAT, beat)
    assert fail_stale_trials(storage, "s", stale_after_s=600) == [0, 1]
    states = {t.number: (t.state, t.user_attrs.get(ERROR, "")) for t in study.trials}
    assert states[0][0] == TrialState.FAIL and f"its process ({gone.pid}) ended" in states[0][1]
    assert states[1][0] == TrialState.FAIL and "no heartbeat from its process for over 600 s" in states[1][1]
    assert states[2][0] == TrialState.RUNNING
    assert fail_stale_trials(storage, "s", stale_after_s=600) == []  # nothing twice


def test_the_sweeper_keeps_its_waiting_trials_alive(tmp_path):
    """A trial whose job waits in a cluster queue has no process of its own yet: the sweeper
    beats for it while the launcher waits, so no other worker fails it as abandoned."""
    import threading

    from omegaconf import OmegaConf

    from hwr.studies.sweeper import StudySweeper

    storage = open_storage(str(tmp_path / JOURNAL))
    study = optuna.create_study(storage=storage, study_name="s")
    queued, done = study.ask(), study.ask()
    study.tell(done, 0.5)
    sweeper = StudySweeper.__new__(StudySweeper)  # without a Hydra launcher: only the heartbeat
    sweeper.options = OmegaConf.create({"heartbeat_s": 0.05})
    sweeper.storage, sweeper.study_id = storage, storage.get_study_id_from_name("s")
    stop = threading.Event()
    beat = threading.Thread(target=sweeper.keep_alive, args=([0, 1], stop))
    start = time.time()
    beat.start()
    time.sleep(0.4)
    stop.set()
    beat.join(timeout=10)
    trials = study.get_trials(deepcopy=True)
    assert trials[0].system_attrs[HEARTBEAT] > start and trials[0].state == TrialState.RUNNING
    assert HEARTBEAT not in trials[1].system_attrs  # finished: left alone
    assert fail_stale_trials(storage, "s", stale_after_s=1) == []
    assert queued.number == 0


def test_a_study_of_an_older_hwr_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "optuna.db").write_bytes(b"SQLite format 3\x00")
    with pytest.raises(HwrError) as caught:
        open_storage(str(tmp_path / JOURNAL))
    message = str(caught.value)
    assert "older hwr (SQLite, Optuna 2)" in message and "\n" not in message
    assert f"optuna storage upgrade --storage sqlite:///{tmp_path / 'optuna.db'}" in message
    assert f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}" in message
    assert not (tmp_path / JOURNAL).exists()  # nothing started beside it


def test_summary_sections_show_importances_history_and_pareto_front(tmp_path):
    journal = str(tmp_path / JOURNAL)
    study = optuna.create_study(storage=open_storage(journal), study_name="one", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
    for i in range(6):
        trial = study.ask({"lr": FloatDistribution(1e-4, 1e-2, log=True), "drop": FloatDistribution(0, 0.5)})
        trial.report(0.5 + i / 100, 1)
        if i == 5:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, 0.9 - trial.params["drop"] / 10)
    text = study_sections(journal, "one", ["val/acc_best"], tmp_path)
    assert "6 trials: 5 complete, 1 pruned, 0 failed, 0 running" in text
    best = study.best_trial
    assert f"Best: trial {best.number} (trial_{best.number:03d}), val/acc_best {best.value:.4f}" in text
    assert "| `drop` |" in text and "| `lr` |" in text  # importances
    assert "![optimisation history](history.png)" in text
    assert (tmp_path / "history.png").read_bytes()[:4] == b"\x89PNG"

    two = optuna.create_study(
        storage=open_storage(journal), study_name="two", directions=["maximize", "minimize"]
    )
    for acc, params in ((0.9, 100), (0.95, 300), (0.85, 400)):  # the last is beaten on both
        two.add_trial(optuna.trial.create_trial(values=[acc, params], params={}, distributions={}))
    text = study_sections(journal, "two", ["val/acc_best", "num_params"], tmp_path)
    assert "## Pareto front (2 trials)" in text
    assert "| trial_001 | 0.95 | 300 |" in text and "| trial_000 | 0.9 | 100 |" in text
    assert "trial_002" not in text


@pytest.mark.slow  # starts processes
def test_a_study_is_stored_continued_and_pruned(data_dir, tmp_path):
    """A session of 2 trials, the same command again with a pruner that stops every trial:
    3 trials in the one journal study, none replayed, each in its own folder; the pruned one
    is a row of the summary, stopped after its first epoch and not tested."""
    args = [*ARGS, *EPOCHS, "paths.log_dir=out"]
    first = run_script("train.py", *args, "hydra.sweeper.n_trials=2", data_dir=data_dir, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    always = [
        "hydra/sweeper/pruner=none",
        "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1.1}",
    ]
    again = run_script(
        "train.py", *args, "hydra.sweeper.n_trials=1", *always, data_dir=data_dir, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr[-3000:]
    study_dir = tmp_path / STUDY
    trials = load(study_dir).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 3  # no replayed parameters
    for trial in trials:  # trial_<n> ran trial n's parameters; no hydra.* among its recorded overrides
        record = json.loads((study_dir / f"trial_{trial.number:03d}" / "metrics.json").read_text())
        assert {f"{k}={v}" for k, v in trial.params.items()} <= set(record["overrides"])
        assert not any(o.startswith("hydra.") for o in record["overrides"])
    pruned = json.loads((study_dir / "trial_002" / "metrics.json").read_text())
    assert pruned["status"] == "pruned" and pruned["pruned_at"] == 1 and pruned["epochs"] == 1
    assert "test/acc" not in pruned
    assert "trial 2 pruned by ThresholdPruner after epoch 1" in again.stdout
    assert "(3 jobs, 0 failed, 1 pruned)" in again.stdout
    rows = {r["job"]: r for r in read_csv(study_dir / "summary.csv")}
    assert rows["trial_002"]["status"] == "pruned" and rows["trial_002"]["epochs"] == "1"
    best = (study_dir / "optimization_results.yaml").read_text()
    assert "best_params" in best and "model.optimizer.lr" in best
    summary = (study_dir / "summary.md").read_text()
    assert "3 trials: 2 complete, 1 pruned, 0 failed" in summary and "| trial_002 |" in summary
    assert "## Parameter importances" in summary and (study_dir / "history.png").is_file()


def start_worker(args: list[str], data_dir: Path, cwd: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HWR_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env, stdout=out, stderr=out
        )


@pytest.mark.slow  # starts processes
def test_two_workers_share_one_journal_study_with_pruning(data_dir, tmp_path):
    """Two sessions started at once on one (not yet existing) study, median pruning after the
    first trial: every trial ends complete or pruned, in its own folder, none twice."""
    prune = ["hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.pruner.n_warmup_steps=0"]
    args = [*ARGS, *EPOCHS, *prune, "hydra.sweeper.n_trials=3", "paths.log_dir=out"]
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [start_worker(args, data_dir, tmp_path, log) for log in logs]
    try:
        for worker, log in zip(workers, logs, strict=True):
            assert worker.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        for worker in workers:
            worker.kill()  # nothing left running after a failure (a no-op once exited)
    study_dir = tmp_path / STUDY
    trials = load(study_dir).trials
    assert len(trials) == 6 and {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6
    assert sorted(p.parent.name for p in study_dir.glob("*/metrics.json")) == [
        f"trial_{i:03d}" for i in range(6)
    ]
    for trial in trials:
        record = json.loads((study_dir / f"trial_{trial.number:03d}" / "metrics.json").read_text())
        assert record["status"] == ("pruned" if trial.state == TrialState.PRUNED else "completed")


@pytest.mark.slow  # starts processes
def test_interrupted_and_killed_workers_leave_no_running_trial(data_dir, tmp_path):
    """SIGTERM: the job records its trial failed as it stops. SIGKILL: nothing can, and the
    next worker on the study marks the trial failed (its process is gone) before going on."""
    args = [*ARGS, "debug=limit", "trainer.max_epochs=200", "hydra.sweeper.n_trials=1", "paths.log_dir=out"]
    study_dir = tmp_path / STUDY
    for number, sig in ((0, signal.SIGTERM), (1, signal.SIGKILL)):
        log = tmp_path / f"worker{number}.log"
        worker = start_worker(args, data_dir, tmp_path, log)
        try:
            deadline = time.monotonic() + 300
            while not (study_dir / f"trial_{number:03d}" / "checkpoints" / "last.ckpt").exists():
                assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            worker.send_signal(sig)
            code = worker.wait(timeout=120)
        finally:
            worker.kill()
        assert code == (143 if sig == signal.SIGTERM else -9), log.read_text()[-3000:]
    trials = load(study_dir).trials
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs[ERROR] == "interrupted"
    assert trials[1].state == TrialState.RUNNING  # until another worker looks
    last = run_script("train.py", *args[:-2], "debug=fdr", "hydra.sweeper.n_trials=1", "paths.log_dir=out",
                      data_dir=data_dir, cwd=tmp_path)  # fmt: skip
    assert last.returncode == 0, last.stderr[-3000:]
    assert "trial 1 was left running by a process that is gone: marked failed" in last.stdout + last.stderr
    trials = load(study_dir).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert "its process" in trials[1].user_attrs[ERROR]


@pytest.mark.slow  # starts processes
def test_a_study_whose_trials_fail_ends_with_its_summary(data_dir, tmp_path):
    """A failed trial is recorded failed with its reason; when every trial failed the summary
    still says why, without a traceback."""
    args = ["hparams_search=mnist_optuna", "model=cnn", "model.net.channels=[8,8,8,8,8,8]", "debug=fdr"]
    run = run_script(
        "train.py", *args, "hydra.sweeper.n_trials=1", "paths.log_dir=out", data_dir=data_dir, cwd=tmp_path
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "error: 1 of 1 jobs failed" in run.stderr
    [trial] = load(tmp_path / "out/debug/optuna/mnist_cnn").trials
    assert trial.state == TrialState.FAIL and "at least 64 px" in trial.user_attrs[ERROR]


def synthetic_study(journal: Path) -> None:
    """A finished 12-trial study shaped like hwr's (epochs as steps, some trials pruned)."""
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(
        storage=open_storage(str(journal)), study_name="english_cnn", direction="maximize", sampler=sampler
    )
    space_ = {
        "model.optimizer.lr": FloatDistribution(5e-4, 1e-2, log=True),
        "model.net.dropout": FloatDistribution(0, 0.4),
        "data.augment.rotate": FloatDistribution(0, 20),
    }
    for _ in range(12):
        trial = study.ask(space_)
        ceiling = (
            0.9 - abs(trial.params["model.optimizer.lr"] - 0.003) * 20 - trial.params["model.net.dropout"] / 5
        )
        for epoch in range(1, 11):
            trial.report(ceiling * (1 - 0.6**epoch), epoch)
            if epoch == 3 and trial.number >= 5 and ceiling < 0.8:
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, ceiling * (1 - 0.6**10))


@pytest.mark.slow  # a server and a browser
def test_the_dashboard_opens_a_finished_study(browser, tmp_path):
    """`optuna-dashboard <journal>` as the guide gives it, in Chromium: the study's page with
    its history and importances. HWR_SCREENSHOT_STUDY=<journal> shows a real study instead."""
    if not shutil.which("optuna-dashboard"):
        pytest.skip("optuna-dashboard is not installed (the sweeps extra)")
    journal = Path(os.environ.get("HWR_SCREENSHOT_STUDY") or tmp_path / JOURNAL)
    if not journal.exists():
        synthetic_study(journal)
    port = free_port()
    server = subprocess.Popen(["optuna-dashboard", str(journal), "--port", str(port), "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()[0][-2000:]
                time.sleep(0.5)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/dashboard/studies/0")
        for card in ("Hyperparameter Importance", "Timeline", "Best Trial"):
            page.get_by_text(card).first.wait_for(timeout=60_000)
        page.wait_for_timeout(3000)  # the plots draw after their cards
        assert "model.optimizer.lr" in page.inner_text("body")
        screenshot(page, "optuna_dashboard.png", tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow  # starts a process
def test_the_command_refuses_an_older_hwr_study_in_one_line(data_dir, tmp_path):
    study_dir = tmp_path / STUDY
    study_dir.mkdir(parents=True)
    (study_dir / "optuna.db").write_bytes(b"SQLite format 3\x00")
    run = run_script("train.py", *ARGS, "debug=fdr", "paths.log_dir=out", data_dir=data_dir, cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.stderr.startswith("error: ") and "optuna storage upgrade --storage sqlite:///" in run.stderr
    assert sorted(p.name for p in study_dir.iterdir()) == ["optuna.db"]  # nothing written beside it
