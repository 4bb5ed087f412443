"""The one check of a composed config, before anything runs or is written.

Every key hwr ships in its configs has a rule here (`RULES`: type and range); a test checks
that none is missing. A value that breaks its rule is one line naming the key, the value and
an example. Nodes with a `_target_` have their keys checked against the target's parameters,
so a key added with `+` and a typo (`+trainer.max_epoch=1`) is caught with "did you mean".
Keys of the user's own (a model's extra argument, a data source) pass unless their target
refuses them.

    validate(cfg)   # raises HwrError with one line
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hwr.errors import HwrError
from hwr.rules import (
    Rule,
    anything,
    choice,
    integer,
    list_of,
    number,
    objectives,
    optional,
    share,
    text,
    text_or_list,
)

HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}

BOOL = choice(True, False)
PATH = text("/a/folder")
COUNT = integer(1, example=64)
ON_DEVICE = choice("auto", True, False)
TARGET = text("module.Class")
TTA = optional(integer(0, 8, example=1))

RULES: dict[str, Rule] = {
    # top level: every command
    "task_name": text("train"),
    "tags": list_of(text(), "[a,b]", empty=True),
    "objective": objectives("val/acc_best"),
    "report": BOOL,
    "overwrite": BOOL,
    "print_config": BOOL,
    "seed": optional(integer(0, 2**32 - 1, example=12345)),
    "train": BOOL,
    "test": BOOL,
    "ckpt_path": optional(text_or_list("<run>/checkpoints/best.ckpt")),
    "init_from": optional(text("<run>/checkpoints/best.ckpt")),
    "resume": optional(anything),  # true, or a run folder: hwr.runs.resume checks it
    "tta_shift": TTA,
    "device": text("auto"),
    "inputs": text_or_list("[a.png,folder/]"),
    "top_k": integer(1, 100, example=5),
    "json": BOOL,
    "output": optional(PATH),
    "labels": optional(PATH),
    "format": choice("onnx", "torchscript"),
    "opset": optional(integer(7, 30, example=18)),
    "parity_batch": integer(2, 4096, example=64),
    "host": text("127.0.0.1"),
    "port": integer(1, 65535, example=8000),
    "max_upload_mb": number(0.001, 100, example=5),
    "workers": integer(0, 256, example=0),
    "log_level": choice("critical", "error", "warning", "info", "debug", "trace"),
    "collect": optional(PATH),
    "paths.*": optional(PATH),
    "explore.chars": list_of(anything, "[5,S]", empty=True),
    "explore.samples": integer(1, 256, example=16),
    "explore.per_class": integer(1, 64, example=8),
    "baselines.methods": list_of(choice("knn", "rf"), "[knn,rf]"),
    "baselines.max_train_samples": optional(integer(1, example=60000)),
    "baselines.train_on_val": BOOL,
    "baselines.n_jobs": integer(-1, example=-1),
    "baselines.knn.k": integer(1, example=5),
    "baselines.knn.weights": choice("uniform", "distance"),
    "baselines.rf.n_estimators": integer(1, example=300),
    "baselines.rf.max_depth": optional(integer(1, example=20)),
    "baselines.rf.min_samples_leaf": integer(1, example=1),
    # data (data/_base.yaml and the datasets' own)
    "data._target_": TARGET,
    "data._recursive_": BOOL,
    "data.data_dir": optional(PATH),
    "data.cache_dir": optional(PATH),
    "data.batch_size": integer(1, 1 << 20, example=128),
    "data.eval_batch_size": integer(1, 1 << 20, example=1024),
    "data.val_fraction": number(0, 1, 0.1, below=True, above=True),
    "data.train_per_class": optional(integer(1, 1 << 30, example=20)),
    "data.seed": integer(0, 2**32 - 1, example=42),
    "data.mean": optional(number(0, 1, 0.5)),
    "data.std": optional(number(1e-6, 1, 0.3)),
    "data.augment.shift": number(0, 14, 2),
    "data.augment.rotate": number(0, 180, 10),
    "data.augment.scale": share(0.1),
    "data.augment.elastic": number(0, 10, 1.5),
    "data.augment.elastic_sigma": number(0.1, 20, 3),
    "data.augment.thickness": share(0.3, below=False),
    "data.augment.blur": number(0, 5, 1),
    "data.augment.contrast": share(0.4),
    "data.augment.lowres": share(0.2, below=False),
    "data.num_workers": integer(0, 256, example=0),
    "data.pin_memory": optional(BOOL),
    "data.on_device": ON_DEVICE,
    "data.balance": BOOL,
    "data.test_on": choice("test", "all"),
    "data.download": BOOL,
    "data.split": text("balanced"),  # the DataModule names its splits
    "data.folder": text("/my/set"),
    "data.csv": optional(text("labels.csv")),
    "data.test_folder": optional(PATH),
    "data.image_size": integer(8, 512, example=28),
    "data.margin": integer(0, 64, example=2),
    "data.min_box": share(0.0),
    "data.test_fraction": number(0, 1, 0.25, below=True, above=True),
    "data.split_by": choice("class", "writer"),
    "data.decode_workers": optional(integer(1, 256, example=2)),
    "data.train_images": text("train-images-idx3-ubyte.gz"),
    "data.train_labels": text("train-labels-idx1-ubyte.gz"),
    "data.test_images": text("t10k-images-idx3-ubyte.gz"),
    "data.test_labels": text("t10k-labels-idx1-ubyte.gz"),
    "data.classes": optional(text_or_list("[a,b,c]")),
    "data.label_offset": integer(0, example=1),
    "data.transpose": BOOL,
    "data.invert": BOOL,
    "data.sources": anything,  # each source is a DataModule config: checked by its target
    "data.sources.*": anything,
    "data.weights": optional(anything),
    "data.weights.*": number(0, example=1),
    # model (model/_base.yaml and the networks)
    "model._target_": TARGET,
    "model.optimizer._target_": TARGET,
    "model.optimizer._partial_": BOOL,
    "model.optimizer.lr": number(1e-8, 10, 0.001),
    "model.optimizer.weight_decay": number(0, 1, 0.0001),
    "model.optimizer.fused": optional(BOOL),
    "model.scheduler": optional(anything),
    "model.scheduler._target_": TARGET,
    "model.scheduler._partial_": BOOL,
    "model.scheduler.max_lr": number(1e-8, 10, 0.001),
    "model.scheduler_interval": choice("step", "epoch"),
    "model.label_smoothing": share(0.1),
    "model.tta_shift": integer(0, 8, example=1),
    "model.channels_last": BOOL,
    "model.compile": choice(
        False, True, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
    ),
    "model.net._target_": TARGET,
    "model.net.channels": list_of(integer(1), "[32,64,128]"),
    "model.net.convs_per_block": integer(1, 8, example=2),
    "model.net.kernel_size": choice(1, 3, 5, 7),
    "model.net.dropout": share(0.1),
    "model.net.head": list_of(integer(1), "[256]", empty=True),
    "model.net.head_dropout": share(0.4),
    "model.net.hidden": list_of(integer(1), "[512,256]", empty=True),
    "model.net.batchnorm": BOOL,
    "model.net.blocks_per_stage": integer(1, 8, example=2),
    # trainer (lightning.Trainer's arguments that the configs set)
    "trainer._target_": TARGET,
    "trainer.default_root_dir": optional(PATH),
    "trainer.min_epochs": optional(integer(0, example=1)),
    "trainer.max_epochs": optional(integer(-1, example=10)),
    "trainer.accelerator": choice("auto", "cpu", "gpu", "cuda", "mps"),
    "trainer.devices": anything,  # 1, 4, "auto", [0, 1]: Lightning checks it
    "trainer.strategy": text("ddp"),
    "trainer.sync_batchnorm": BOOL,
    "trainer.precision": choice(
        "32-true", "32", 32, "16-mixed", "16", 16, "bf16-mixed", "bf16-true", "16-true", "64-true", "64", 64
    ),
    "trainer.check_val_every_n_epoch": integer(1, example=1),
    "trainer.num_sanity_val_steps": integer(-1, example=1),
    "trainer.log_every_n_steps": integer(1, example=50),
    "trainer.deterministic": choice(True, False, "warn"),
    "trainer.fast_dev_run": anything,  # true or a number of batches: Lightning checks it
    "trainer.limit_*_batches": number(0, example=20),
    "trainer.overfit_batches": number(0, example=4),
    "trainer.profiler": optional(anything),
    "trainer.profiler.*": anything,
    # callbacks and loggers: Lightning's and hwr's classes, checked against their arguments
    "callbacks.*": optional(anything),
    "callbacks.*._target_": TARGET,
    "callbacks.model_checkpoint.*": anything,
    "callbacks.lr_monitor.logging_interval": choice("step", "epoch"),
    "callbacks.model_summary.max_depth": integer(-1, example=2),
    "callbacks.progress_bar.refresh_s": number(0, example=0.5),
    "callbacks.early_stopping.patience": integer(1, example=10),
    "callbacks.early_stopping.min_delta": number(0, example=0.001),
    "callbacks.early_stopping.*": anything,
    "logger.*": optional(anything),
    "logger.*.*": anything,
}
EXAMPLES_NEEDED = {
    "ckpt_path": "ckpt_path=<run>/checkpoints/best.ckpt",
    "inputs": "inputs=[a.png,folder/]",
    "data.folder": "data.folder=/my/set",
}


def rule_for(key: str) -> Rule | None:
    """The rule of a key (exact, else the first pattern that matches)."""
    if key in RULES:
        return RULES[key]
    return next(
        (rule for pattern, rule in RULES.items() if "*" in pattern and fnmatchcase(key, pattern)), None
    )


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every node of a config, interpolations resolved; `???` as MISSING.
    A value that names Hydra's runtime (`${hydra:...}`) outside a Hydra app is left out."""
    for key in node:
        path = f"{prefix}.{key}" if prefix else str(key)
        if OmegaConf.is_missing(node, key):
            yield path, "???"
            continue
        try:
            value = node[key]
            plain = (
                OmegaConf.to_container(value, resolve=True)
                if isinstance(value, DictConfig | ListConfig)
                else value
            )
        except OmegaConfBaseException as e:
            if "HydraConfig was not set" in str(e):
                continue  # composed outside a command (tests, notebooks): Hydra's runtime is not there
            raise HwrError(f"{path} cannot be resolved ({str(e).splitlines()[0]})") from None
        yield path, plain
        if isinstance(value, DictConfig):
            yield from leaves(value, path)


def _accepted(target: str) -> set[str] | None:
    """The keyword arguments a `_target_` accepts (following **kwargs up its classes), or None
    when it takes any or cannot be imported here (then its own call says what is wrong)."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception:  # noqa: BLE001 - not importable here: instantiate will say so
        return None
    names: set[str] = set()
    for cls in inspect.getmro(obj) if inspect.isclass(obj) else [obj]:
        init = cls.__init__ if inspect.isclass(obj) else cls
        if inspect.isclass(obj) and "__init__" not in vars(cls):
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
    return None


def check_targets(cfg: DictConfig, prefix: str = "") -> None:
    """Every key beside a `_target_` must be one of its arguments (did you mean ...)."""
    target = cfg.get("_target_") if "_target_" in cfg else None
    accepted = _accepted(str(target)) if isinstance(target, str) else None
    for key, value in cfg.items_ex(resolve=False):
        path = f"{prefix}.{key}" if prefix else str(key)
        if accepted is not None and key not in HYDRA_KEYS and key not in accepted:
            close = difflib.get_close_matches(str(key), sorted(accepted), n=1)
            takes = f"; {target} takes {', '.join(sorted(accepted))}"
            hint = f"; did you mean {prefix}.{close[0]}?" if close else takes
            raise HwrError(f"{path} is not an argument of {target}{hint}")
        if isinstance(value, DictConfig):
            check_targets(value, path)


def validate(cfg: DictConfig) -> None:
    """One HwrError naming the first key whose value breaks its rule (see module docstring)."""
    for key, value in leaves(cfg):
        if value == "???":
            example = EXAMPLES_NEEDED.get(key, f"{key}=...")
            raise HwrError(f"{key} is required: add {example}")
        rule = rule_for(key)
        problem = rule(value) if rule is not None else None
        if problem:
            shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
            raise HwrError(f"{key}={shown} {problem.format(key=key)}")
    check_targets(cfg)
    cross_checks(cfg)


def cross_checks(cfg: DictConfig) -> None:
    """Rules between keys."""
    trainer, model = cfg.get("trainer") or {}, cfg.get("model") or {}
    if trainer.get("max_epochs") == -1 and not trainer.get("max_steps") and model.get("scheduler"):
        raise HwrError(
            "trainer.max_epochs=-1 (no end) leaves model.scheduler (one cycle over the whole run) "
            "without a length; set a number of epochs (e.g. trainer.max_epochs=10) or model.scheduler=null"
        )
    if trainer.get("accelerator") in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise HwrError(
                f"trainer.accelerator={trainer.accelerator} but torch sees no CUDA GPU on this machine; "
                "use trainer=default (a GPU when there is one, else the CPU) or trainer=cpu"
            )
    if cfg.get("resume") not in (None, False, "false", "null") and cfg.get("ckpt_path") not in (None, "last"):
        raise HwrError("pass resume=... or ckpt_path=..., not both")
