"""The configs hwr ships: every key is checked by hwr.validation, their defaults agree with the
Python classes they build, and every data and model config leaves a checkpoint that loads with
weights-only loading."""

from __future__ import annotations

import inspect

import pytest
import torch
from helpers import glyphs, make_config
from hydra.utils import get_class
from omegaconf import OmegaConf

from hwr.commands.eval import evaluate
from hwr.commands.train import train
from hwr.config import compose_config, config_dir, group_options
from hwr.data.idx import write_idx
from hwr.errors import HwrError
from hwr.inference.model import TrainedModel
from hwr.validation import leaves, rule_for, validate

PATHS = ["paths.output_dir=/out", "paths.data_dir=/data", "paths.cache_dir=/cache"]
NEEDED = {  # the keys a command cannot run without
    "train": [],
    "eval": ["ckpt_path=x.ckpt"],
    "predict": ["inputs=[a.png]"],  # no ckpt_path: the bundled model
    "export": [],
    "serve": ["collect=/my/corrections"],
    "explore": [],
    "baselines": [],
}
NEEDED_EXPERIMENT = {"personal": ["data.folder=/my/set"]}
NEEDED_DATA = {
    "folder": ["data.folder=/my/set"],
    "idx": [f"data.{k}=f" for k in ("train_images", "train_labels", "test_images", "test_labels")],
}


def compositions() -> list[tuple[str, list[str]]]:
    """Every data x model pair, experiment, debug preset, trainer and callbacks option, command."""
    out = [
        ("train", [f"data={d}", f"model={m}", *NEEDED_DATA.get(d, [])])
        for d in group_options("data")
        for m in group_options("model")
    ]
    out += [
        ("train", [f"{group}={option}", *NEEDED_EXPERIMENT.get(option, [])])
        for group in ("experiment", "debug", "trainer", "callbacks")
        for option in group_options(group)
    ]
    if not torch.cuda.is_available():  # a GPU trainer is refused on a machine without one: cpu here
        out = [(n, [*o, "trainer.accelerator=cpu"] if any("gpu" in x for x in o) else o) for n, o in out]
    out += [("train", ["hparams_search=mnist_optuna"])]
    out += [(name, needed) for name, needed in NEEDED.items()]
    return out


@pytest.mark.parametrize(
    "name,overrides", compositions(), ids=lambda v: v if isinstance(v, str) else " ".join(v)
)
def test_every_shipped_key_has_a_rule_and_its_value_passes(name, overrides):
    cfg = compose_config(name, [*PATHS, *overrides])
    unchecked = [key for key, value in leaves(cfg) if not isinstance(value, dict) and rule_for(key) is None]
    assert not unchecked, f"keys without a rule in hwr.validation.RULES: {unchecked}"
    validate(cfg)


@pytest.mark.parametrize(
    "override,message",
    [
        ("seed=-1", "seed=-1 must be a whole number from 0 to 4294967295 (e.g. seed=12345)"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1 (no end) leaves model.scheduler"),
        ("trainer.max_epochs=-2", "trainer.max_epochs=-2 must be a whole number of -1 or more"),
        ("model.net.dropout=1.5", "model.net.dropout=1.5 must be a number from 0 to just under 1"),
        ("data.augment.rotate=-3", "data.augment.rotate=-3 must be a number from 0 to 180"),
        ("data.on_device=maybe", "data.on_device=maybe must be one of auto, true, false"),
        ("model.compile=fast", "model.compile=fast must be one of false, true, default, reduce-overhead"),
        ("data.batch_size=1.5", "data.batch_size=1.5 must be a whole number from 1 to"),
        ("model.net.channels=[]", "model.net.channels=[] must be a list like [32,64,128]"),
        ("tags=oops", "tags=oops must be a list like [a,b]"),
        ("objective=[a,b,c]", "objective=['a', 'b', 'c'] must be a metric name or a list of two"),
        (
            "+trainer.max_epoch=1",
            "trainer.max_epoch is not an argument of lightning.Trainer; did you mean trainer.max_epochs?",
        ),
        (
            "+model.net.dropuot=0.1",
            "model.net.dropuot is not an argument of hwr.models.cnn.CNN; did you mean model.net.dropout?",
        ),
        (
            "+data.bach_size=1",
            "data.bach_size is not an argument of hwr.data.mnist.MNISTDataModule; did you mean",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(override, message):
    cfg = compose_config("train", [*PATHS, override])
    with pytest.raises(HwrError) as raised:
        validate(cfg)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value), str(raised.value)


def test_a_required_value_says_how_to_give_it():
    with pytest.raises(HwrError, match=r"^inputs is required: add inputs=\[a.png,folder/\]$"):
        validate(compose_config("predict", ["ckpt_path=x.ckpt"]))


@pytest.mark.parametrize("group", ["data", "model"])
def test_python_defaults_agree_with_the_yaml(group):
    """A default lives in the YAML; a class's own default, where it has one, must say the same
    (`scheduler_interval` once said epoch in Python and step in the YAML)."""
    differ = []
    for option in group_options(group):
        if any(
            d in group_options(group)
            for d in OmegaConf.load(config_dir() / group / f"{option}.yaml").get("defaults", [])
        ):
            continue  # a preset of another option (cnn_deep: a wider cnn), not a class's own defaults
        cfg = OmegaConf.to_container(
            compose_config("train", [*PATHS, f"{group}={option}", *NEEDED_DATA.get(option, [])]), resolve=True
        )
        nodes = [cfg[group]] + ([cfg[group]["net"]] if group == "model" else [])
        for node in nodes:
            cls = get_class(node["_target_"])
            seen = set()  # a parameter counts where it is first defined (a subclass's own default)
            for klass in inspect.getmro(cls):
                if "__init__" not in vars(klass):
                    continue
                for param in inspect.signature(klass.__init__).parameters.values():
                    if (
                        param.default is inspect.Parameter.empty
                        or param.name not in node
                        or param.name in seen
                    ):
                        continue
                    seen.add(param.name)
                    ours, theirs = node[param.name], param.default
                    theirs = list(theirs) if isinstance(theirs, tuple) else theirs
                    if theirs is not None and ours != theirs and not isinstance(ours, dict):
                        differ.append(f"{option}: {klass.__name__}.{param.name}={theirs!r}, YAML {ours!r}")
    assert not differ, differ


def write_idx_set(root):
    """A tiny IDX pair (10 classes) in the real format."""
    for part, n, seed in (("train", 300, 1), ("test", 100, 2)):
        images, labels = glyphs(n, 10, seed)
        write_idx(root / f"{part}-images.gz", images)
        write_idx(root / f"{part}-labels.gz", labels)


DATA_CASES = {
    "mnist": [],
    "emnist": [],
    "english": [],
    "folder": ["data.folder=english"],
    "idx": ["data.classes=[zero,one,two,three,four,five,six,seven,eight,nine]"],  # + the files
    "mix": ["data.sources.emnist.split=balanced", "data.sources.emnist.download=false"],
}


@pytest.mark.parametrize(
    "overrides",
    [[f"data={d}", "model=mlp", *extra] for d, extra in DATA_CASES.items()]
    + [["data=mnist", f"model={m}"] for m in ("cnn", "cnn_deep", "resnet")],
    ids=lambda o: " ".join(o[:2]),
)
def test_every_data_and_model_config_leaves_a_weights_only_checkpoint(data_dir, tmp_path, overrides):
    """Checkpoints hold only plain Python containers: torch.load(weights_only=True) reads them,
    and TrainedModel (eval, predict, export, serve) rebuilds the model from one alone."""
    if "data=idx" in overrides:  # the fixture folder is shared and read-only: the IDX files go here
        write_idx_set(tmp_path)
        overrides = [
            *overrides,
            *(f"data.{p}_{k}={tmp_path}/{p}-{k}.gz" for p in ("train", "test") for k in ("images", "labels")),
        ]
    quick = [
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "test=false",
    ]
    out = tmp_path / "run"
    train(make_config("train", [*overrides, *quick, "data.batch_size=16"], data_dir, out))
    for name in ("best.ckpt", "last.ckpt"):
        ckpt = torch.load(out / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert ckpt["state_dict"] and ckpt["hwr_trained_on"]["classes"], name
    model = TrainedModel.load(out / "checkpoints" / "best.ckpt", "cpu")
    assert model.class_names == ckpt["hwr_trained_on"]["classes"]
    if "data=idx" in overrides:
        assert model.class_names[:2] == ["zero", "one"]  # the list given on the command line
        result = evaluate(
            make_config("eval", [f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}"], data_dir, tmp_path / "ev")
        )
        assert result["status"] == "completed" and "test/acc" in result


@pytest.mark.parametrize(
    "env", [{}, {"XDG_CACHE_HOME": "/xdg"}, {"HWR_CACHE_DIR": "/mine", "XDG_CACHE_HOME": "/xdg"}], ids=str
)
def test_the_cache_folder_is_the_same_in_the_yaml_and_in_python(monkeypatch, env):
    """paths.cache_dir (what the command line gives the English set) and default_cache_dir
    (what a DataModule built in Python uses) name the same folder."""
    from hwr.data.folder import default_cache_dir

    for key in ("HWR_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = compose_config("train", ["paths.output_dir=/out"])
    assert cfg.paths.cache_dir == str(default_cache_dir())
