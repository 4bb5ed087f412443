"""The package as a user gets it: a wheel built by `uv build`, installed into a fresh virtual
environment, runs `hwr train` from an empty folder, with no checkout anywhere near it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, write_mnist

# a run's own command line: one epoch, no progress bar in the captured output
TRAIN = ["train", "trainer.max_epochs=1", "callbacks.progress_bar=null"]


def tail(proc: subprocess.CompletedProcess | subprocess.Popen, output: str | None = None) -> str:
    """Its exit status and the end of its stderr (or of `output`) for an assertion message."""
    text = proc.stderr if output is None else output
    return f"exit {proc.returncode}:\n{(text or '')[-3000:]}"


def uv(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["uv", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def user_env(data: Path, cache: Path) -> dict[str, str]:
    """The environment of a user's shell: nothing that points Python at the checkout or at
    the project's venv; the datasets and the cache in tmp."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    env.update(HWR_DATA_DIR=str(data), HWR_CACHE_DIR=str(cache), PYTHONUNBUFFERED="1")
    return env


def only_run(cwd: Path) -> Path:
    """The one run folder that `hwr train` made in `cwd`."""
    runs = cwd / "outputs" / "train" / "runs"
    found = sorted(runs.iterdir()) if runs.is_dir() else []
    assert len(found) == 1, f"expected one run in {runs}, found {[p.name for p in found]}"
    return found[0]


@pytest.mark.slow  # builds and installs a wheel
def test_wheel_installs_into_a_fresh_venv_and_trains_from_an_empty_folder(tmp_path: Path):
    """Done when a wheel built with `uv build` installs into a fresh virtual environment and
    `hwr train model=mlp trainer.max_epochs=1` runs from an empty folder.

    The wheel goes into a FRESH venv (`uv venv --python <this interpreter>`) with its dependencies
    at the versions of uv.lock (`uv export --frozen --no-dev --no-emit-project`), not the
    project's venv with a .pth file: uv installs from its cache by hard links, so the full
    install (torch and the CUDA wheels included) takes about 0.5 s from a warm cache and adds
    about 12 MB on disk (the venv is 5.4 GB in apparent size, all of it links into the cache).
    It tries `--offline` first (no index query, no download); a cache that lacks something is
    filled from the index once, then the test runs offline. Where the uv cache is on another
    file system than tmp, uv copies instead of linking: slower (tens of seconds) and 5.4 GB.

    Two runs, side by side (each spends most of its ~17 s importing lightning, torchmetrics and
    torchvision, as it does in the project's venv; the training is under a second). The whole
    test takes ~50 s on a busy 2-core machine, of which building and installing ~2 s:
    - `empty/`: an empty folder, `hwr train model=mlp`: completed, test/acc recorded;
    - `user/`: only `configs/model/tiny.yaml` (`defaults: [mlp]`, `net: {hidden: [16]}`),
      `hwr train model=tiny`: the user's own configs/ folder is found and its model is trained.
    Also `python -m hwr --help` lists the commands, and the hwr these commands import is the
    venv's copy from the wheel (site-packages, its configs holding train.yaml), not the checkout.
    """
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH: it builds the wheel and makes the venv (https://docs.astral.sh/uv/)")
    t0 = time.perf_counter()

    # the wheel, built from the checkout
    dist = tmp_path / "dist"
    build = uv("build", "--wheel", "--out-dir", str(dist), timeout=300)
    assert build.returncode == 0, tail(build)
    wheels = sorted(dist.glob("hwr-*.whl"))
    assert len(wheels) == 1, f"uv build made {[p.name for p in dist.iterdir()]}"
    wheel = wheels[0]

    # a fresh venv: the locked dependencies and the wheel
    venv = tmp_path / "venv"
    made = uv("venv", str(venv), "--python", sys.executable, timeout=120)
    assert made.returncode == 0, tail(made)
    python, hwr = venv / "bin" / "python", venv / "bin" / "hwr"
    requirements = tmp_path / "requirements.txt"
    export = uv("export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "-o", str(requirements))
    assert export.returncode == 0, tail(export)
    install_args = ["pip", "install", "--python", str(python), "-r", str(requirements), str(wheel)]
    install = uv(*install_args, "--offline", cwd=tmp_path)
    if install.returncode != 0:  # the cache lacks a package (or an index page): fetch it once
        install = uv(*install_args, cwd=tmp_path)
    assert install.returncode == 0, tail(install)
    assert hwr.exists(), f"no console command {hwr}: {install.stderr[-2000:]}"
    assert hwr.read_text().splitlines()[0] == f"#!{python}", "the hwr command runs another interpreter"
    site = next((venv / "lib").glob("python3*/site-packages"))
    (dist_info,) = site.glob("hwr-*.dist-info")
    direct_url = json.loads((dist_info / "direct_url.json").read_text())
    assert direct_url["url"].endswith(wheel.name), f"hwr was not installed from the wheel: {direct_url}"
    t_install = time.perf_counter() - t0

    # the folders a user runs from: nowhere near the checkout
    assert not tmp_path.resolve().is_relative_to(ROOT)
    data = write_mnist(tmp_path / "data", n_train=200, n_test=100)
    env = user_env(data, tmp_path / "cache")
    empty, user = tmp_path / "empty", tmp_path / "user"
    empty.mkdir()
    (user / "configs" / "model").mkdir(parents=True)
    (user / "configs" / "model" / "tiny.yaml").write_text("defaults: [mlp]\nnet: {hidden: [16]}\n")

    # both trainings side by side; the quick checks while they run
    logs = {cwd: open(tmp_path / f"{cwd.name}.log", "w+") for cwd in (empty, user)}  # noqa: SIM115
    procs = {
        cwd: subprocess.Popen(
            [str(hwr), *TRAIN, f"model={model}"], cwd=cwd, env=env, stdout=logs[cwd], stderr=subprocess.STDOUT
        )
        for cwd, model in ((empty, "mlp"), (user, "tiny"))
    }
    try:
        where = subprocess.run(
            [
                str(python),
                "-c",
                "import hwr, hwr.config, hwr.bundled as b; print(b.WEIGHTS.stat().st_size, b.CARD.is_file());"
                " print(hwr.__file__); print(hwr.config.config_dir())",
            ],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        helped = subprocess.run(
            [str(python), "-m", "hwr", "--help"],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for proc in procs.values():
            proc.wait(timeout=600)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        output = {}
        for cwd, log in logs.items():
            log.seek(0)
            output[cwd] = log.read()
            log.close()

    assert where.returncode == 0, tail(where)
    shipped, module, configs = where.stdout.strip().splitlines()[-3:]
    module, configs = Path(module), Path(configs)
    assert int(shipped.split()[0]) > 100_000 and shipped.endswith("True"), shipped  # the bundled model
    assert module.is_relative_to(site) and configs.is_relative_to(site), where.stdout
    assert not module.resolve().is_relative_to(ROOT), f"hwr imported from the checkout: {module}"
    assert (configs / "train.yaml").is_file() and (configs / "model" / "mlp.yaml").is_file(), configs
    assert helped.returncode == 0, tail(helped)
    for command in ("train", "eval", "predict", "export", "serve", "explore", "baselines"):
        assert f"  {command} " in helped.stdout, helped.stdout
    for cwd, proc in procs.items():
        assert proc.returncode == 0, f"hwr train in {cwd.name}/: {tail(proc, output[cwd])}"

    # empty/: the shipped mlp, completed and tested
    run = only_run(empty)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed", metrics
    assert 0 <= metrics["test/acc"] <= 1 and metrics["epochs"] == 1, metrics
    assert metrics["model"] == "MLP" and metrics["output_dir"] == str(run), metrics
    assert sorted(p.name for p in empty.iterdir()) == ["outputs"], "the run wrote outside outputs/"

    # user/: the user's configs/model/tiny.yaml, found in the working directory
    run = only_run(user)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and "test/acc" in metrics, metrics
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert config["model"]["net"]["hidden"] == [16], config["model"]
    runtime = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"]
    assert runtime["choices"]["model"] == "tiny", runtime["choices"]
    local = {"path": str(user / "configs"), "schema": "file", "provider": "hwr-local"}
    assert runtime["config_sources"][0] == local, runtime["config_sources"]

    print(f"wheel built and installed in {t_install:.1f} s, all in {time.perf_counter() - t0:.1f} s")
