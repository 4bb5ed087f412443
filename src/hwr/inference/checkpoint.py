"""Reading checkpoints, once each: the network, its settings and what it was trained on.

A checkpoint is a Lightning checkpoint of hwr's Classifier: `state_dict` (the network's
weights under `net.`), `hyper_parameters` (the network's config, classes, input shape, test-
time shifts) and, under `TRAINED_ON`, its DataModule's `describe()`: the class path, the
arguments that define its split, the preprocessing a new image needs. `read_checkpoint` loads
the file once with weights-only loading (plain containers only); `network` rebuilds the
network from it without the training module, and `TrainedOn` reads the record back, so
testing a checkpoint or feeding it new images needs neither the configs nor Lightning's
training machinery. Checkpoints written before the record existed are read through `_LEGACY`.
"""

from __future__ import annotations

import glob
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from torch import nn

from hwr import bundled
from hwr.errors import HwrError
from hwr.preprocess import Preprocessing

# The checkpoint key of what the model was trained on: the DataModule's `describe()`, which the
# Classifier stores in every checkpoint it saves.
TRAINED_ON = "hwr_trained_on"
NET_PREFIX = "net."

# The reader of checkpoints from before the trained-on record (hwr's first versions): they
# name their dataset, and their DataModule hparams hold the split arguments. Frozen: a new
# dataset writes the record and never needs a line here.
_LEGACY: dict[str, tuple[str, tuple[str, ...], dict[str, Any], tuple[str, ...]]] = {
    # name: (class path, split arguments, fixed preprocessing, preprocessing from hparams)
    "mnist": ("hwr.data.mnist.MNISTDataModule", ("seed", "val_fraction"), {"box": 20, "center": "mass"}, ()),
    "emnist": ("hwr.data.emnist.EMNISTDataModule", ("seed", "val_fraction", "split"), {}, ()),
    "english": (
        "hwr.data.english.EnglishDataModule",
        ("seed", "val_fraction", "folder", "test_fraction", "split_by", "image_size", "margin", "min_box"),
        {},
        ("image_size", "margin", "min_box"),
    ),
}


class ReadOnlyDict(dict):
    """A dict that refuses changes (and still pickles and copies, unlike MappingProxyType)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a trained model's record is read-only; make a new one with dataclasses.replace")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]
    __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        return ReadOnlyDict, (dict(self),)


@dataclass(frozen=True)
class TrainedOn:
    """What a checkpoint was trained on (see `CharDataModule.describe`).

    Attributes:
        class_path: the DataModule class, e.g. `hwr.data.mnist.MNISTDataModule`.
        name: its short name (`mnist`), for reports.
        split: the constructor arguments that rebuild the same train/val/test split.
        preprocessing: how a new image becomes the model's input, normalisation included.
    """

    class_path: str
    name: str
    split: Mapping[str, Any] = field(default_factory=ReadOnlyDict)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrainedOn:
        return cls(
            class_path=str(record["class_path"]),
            name=str(record.get("name") or record["class_path"].rsplit(".", 1)[-1]),
            split=ReadOnlyDict(record.get("split") or {}),
            preprocessing=Preprocessing.from_dict(record["preprocessing"]),
        )

    @classmethod
    def from_legacy(cls, hparams: Mapping[str, Any], path: str | Path) -> TrainedOn:
        """A checkpoint without the record: its DataModule hparams and dataset name."""
        name = hparams.get("dataset")
        if name not in _LEGACY:
            raise HwrError(
                f"{path} does not say what it was trained on (no {TRAINED_ON!r} record, dataset "
                f"{name!r}); retrain it with this hwr, which records it"
            )
        class_path, split_keys, fixed, copied = _LEGACY[name]
        preprocessing = Preprocessing(
            **fixed,
            **{k: hparams[k] for k in copied if k in hparams},
            mean=float(hparams.get("mean", 0.0)),
            std=float(hparams.get("std", 1.0)),
        )
        split = {k: hparams[k] for k in split_keys if k in hparams}
        return cls(class_path, name, ReadOnlyDict(split), preprocessing)

    def differences(self, other: TrainedOn) -> list[str]:
        """What differs between two records: the class, split arguments (those both name)
        and preprocessing fields. Empty when a model trained on one can join the other's ensemble."""
        diffs = ["class_path"] if self.class_path != other.class_path else []
        diffs += [k for k in self.split if k in other.split and self.split[k] != other.split[k]]
        mine, theirs = self.preprocessing.to_dict(), other.preprocessing.to_dict()
        return diffs + [f"preprocessing.{k}" for k in mine if mine[k] != theirs[k]]

    def datamodule_class(self) -> type:
        try:
            return get_class(self.class_path)
        except Exception as e:  # noqa: BLE001 - a module that is not importable here: say which
            raise HwrError(
                f"the checkpoint was trained with {self.class_path}, which cannot be imported here "
                f"({type(e).__name__}: {e}); put its module on PYTHONPATH or pass data=<config>"
            ) from e

    def datamodule(self, data_dir: str | Path, cache_dir: str | Path | None = None) -> Any:
        """The DataModule the checkpoint was trained with, reading `data_dir`: same class,
        same split, same normalisation; the rest (batch sizes, workers) at the class defaults."""
        cls = self.datamodule_class()
        kwargs: dict[str, Any] = {**self.split, "data_dir": data_dir}
        kwargs.update(mean=self.preprocessing.mean, std=self.preprocessing.std)
        if cache_dir is not None and "cache_dir" in inspect.signature(cls).parameters:
            kwargs["cache_dir"] = cache_dir
        return cls(**kwargs)


def _reason(error: Exception) -> str:
    """Why torch could not read a file, in a user's words: its unpickler's own messages
    (`KeyError: 101`, a sentence cut at the first line) say nothing to someone who passed a
    text file or a half-copied checkpoint."""
    text = str(error)
    if "zip archive" in text or "central directory" in text or isinstance(error, EOFError | RuntimeError):
        return "truncated or corrupt: copy it again"
    return "not a file torch saved"


def read_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint at `path`, loaded once with weights-only loading; an HwrError naming
    `key` when it is missing, not a file torch saved, truncated, or not a Lightning checkpoint."""
    path = Path(bundled.resolve(path))
    if not path.is_file() and bundled.is_bundled(path):
        raise HwrError(
            f"{key}=bundled: the bundled model is missing from this install ({path}); reinstall hwr, "
            "rebuild it with scripts/train_bundled.sh, or pass your own checkpoint"
        )
    if not path.is_file():
        raise HwrError(f"{key}={path} does not exist; pass <run dir>/checkpoints/best.ckpt (or last.ckpt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, foreign or not a torch file at all
        raise HwrError(f"{key}={path} is not a checkpoint hwr can read ({_reason(e)})") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise HwrError(f"{key}={path} is a torch file but not a Lightning checkpoint (no state_dict)")
    return ckpt


def hyper_parameters(ckpt: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """The Classifier's settings a checkpoint was saved with (net config, classes, input shape)."""
    hparams = dict(ckpt.get("hyper_parameters") or {})
    missing = [k for k in ("net", "input_shape", "num_classes") if k not in hparams]
    if missing:
        raise HwrError(f"{path} has no {', '.join(missing)} in its hyper_parameters: not an hwr checkpoint")
    hparams["class_names"] = [str(c) for c in hparams.get("class_names") or range(hparams["num_classes"])]
    return hparams


# What inference, testing and init_from read from a Classifier's settings (the rest is
# training's); label_smoothing: the test loss is computed as the training run's
INFERENCE_HPARAMS = (
    "net",
    "input_shape",
    "num_classes",
    "class_names",
    "tta_shift",
    "channels_last",
    "label_smoothing",
)


def _without_folders(record: Any) -> Any:
    """A trained-on record with every `data_dir` emptied: where the trainer kept its data means
    nothing on another machine (a mix source without one reads the data_dir it is given)."""
    if isinstance(record, Mapping):
        return {k: None if k == "data_dir" else _without_folders(v) for k, v in record.items()}
    return record


def inference_copy(ckpt: Mapping[str, Any], half: bool = True, folders: bool = False) -> dict[str, Any]:
    """A training checkpoint cut to what inference and init_from read: the network's weights
    (float16 when `half`: half the size, float32 again once loaded), its settings and what it
    was trained on, without the training machine's data folders unless `folders`. No
    optimiser or loop state: plain containers that weights-only loading reads. This is how
    the bundled model is made (scripts/bundle_model.py)."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).clone()
        for k, v in ckpt["state_dict"].items()
        if k.startswith(NET_PREFIX)
    }
    hparams = ckpt.get("hyper_parameters") or {}
    out: dict[str, Any] = {
        "state_dict": state,
        "hyper_parameters": {k: hparams[k] for k in INFERENCE_HPARAMS if k in hparams},
    }
    if ckpt.get(TRAINED_ON):
        out[TRAINED_ON] = ckpt[TRAINED_ON] if folders else _without_folders(ckpt[TRAINED_ON])
    return out


def differing_keys(theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> list[str]:
    """The keys of two network configs (`model.net`) whose values differ, sorted."""
    return sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))


def network(ckpt: Mapping[str, Any], path: str | Path) -> nn.Module:
    """The trained network of a checkpoint, in eval mode on the CPU: built from its config
    (`hyper_parameters.net`) and loaded with its weights, without the training module."""
    hparams = hyper_parameters(ckpt, path)
    try:
        net = instantiate(
            hparams["net"],
            input_shape=list(hparams["input_shape"]),
            num_classes=int(hparams["num_classes"]),
            _convert_="all",
        )
    except Exception as e:  # noqa: BLE001 - a network class not importable here, or changed arguments
        raise HwrError(f"{path}: cannot rebuild its network {hparams['net'].get('_target_')} ({e})") from e
    weights = {k[len(NET_PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(NET_PREFIX)}
    try:
        net.load_state_dict(weights)
    except RuntimeError as e:
        raise HwrError(f"{path}: its weights do not fit its network ({str(e).splitlines()[0]})") from e
    if hparams.get("channels_last"):
        net.to(memory_format=torch.channels_last)  # the layout it was trained in
    return net.eval()


def trained_on(ckpt: Mapping[str, Any], path: str | Path) -> TrainedOn:
    """What a checkpoint says it was trained on (its record, or the legacy reader)."""
    record = ckpt.get(TRAINED_ON)
    if record:
        return TrainedOn.from_record(record)
    return TrainedOn.from_legacy(ckpt.get("datamodule_hyper_parameters") or {}, path)


def expand_paths(spec: str | Path | Sequence[str]) -> list[str]:
    """A path, a glob pattern or a list of them -> the checkpoint files, in a stable order
    (`bundled` names the model hwr ships)."""
    paths: list[str] = []
    for item in [spec] if isinstance(spec, str | Path) else list(spec):
        item = str(bundled.resolve(item))
        if glob.has_magic(item):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise HwrError(f"no checkpoint matches {item}")
            paths += found
        else:
            paths.append(item)
    if not paths:
        raise HwrError("ckpt_path is empty; pass a checkpoint, a list [a.ckpt,b.ckpt] or a glob")
    return paths
