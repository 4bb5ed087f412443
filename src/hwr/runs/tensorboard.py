"""TensorBoard as a person opens it: one entry per run, the curves that matter, and an HPARAMS
table that leads with the objective and the settings people compare.

Everything of a run lives in its own event folder (`<run>/tensorboard`), so the run list shows
each run once. The HPARAMS session goes there too: its start (the hyperparameters) when the
run starts, and at its end an experiment summary, the session's end and the one metric no
curve holds (`test/f1_macro`). TensorBoard reads an HPARAMS metric as the last value of a
scalar series, so the table's columns point at curves the run already has (`val/acc_best`,
`test/acc`, `train/loss`, `train/time_s` from hwr.training.callbacks.TrainingClock); no
single-point chart is written for them.

The experiment summary decides the table's columns, which TensorBoard otherwise takes from
every setting and every scalar, sorted by name (`data/augment/*` first, `epoch` and
`lr-AdamW` ahead of the objective). Its table gives every column 160 px and ticks the first
five settings: at 1440 px the objective is visible only after at most four of them. So the
summary holds four settings every run has, as short columns (CURATED: the network and data,
lr, epochs, augmentation on or off), then the objective and the registry's HPARAMS metrics.
All settings stay in the session (and hparams.yaml); TensorBoard shows one run's summary for
the whole log folder, which is why the columns are the same for every run.

Lightning's `epoch` scalar is dropped (the x axis is the step already; it led Time Series).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from hwr.evaluation.metrics import hparams_metrics

# the scalar series that holds an HPARAMS metric, where it is not the metric's own name
SERIES = {"train_time_s": "train/time_s"}
# HPARAMS metrics that no curve holds (the report's, in metrics.json only): written at the end
FROM_RECORD = ("test/f1_macro",)
# after the run's objective (val/acc_best for train, test/acc for eval); a loss tells runs apart
# least, so it goes last (TensorBoard ticks the first five)
HPARAMS_METRICS = tuple(sorted(hparams_metrics(), key=lambda name: name.endswith("loss")))
# the HPARAMS table's settings, in this order: (column, key in flat_hparams); four at most
CURATED = (
    ("model", None),  # the network's class and the dataset: "CNN · english"
    ("lr", "model/optimizer/lr"),
    ("epochs", "trainer/max_epochs"),
    ("augment", None),  # on or off: any data/augment/* setting not zero
)


def _tensorboards(loggers: Sequence[Logger]) -> list[TensorBoardLogger]:
    return [lg for lg in loggers if isinstance(lg, TensorBoardLogger)] if rank_zero_only.rank == 0 else []


def trial_name(run_dir: Path) -> str:
    """The trial's short name in the HPARAMS table: `<time> <task>` for a timestamped run folder
    (`outputs/<task>/runs/<date>_<time>`), `<time>#<job> <task>` for a job of a multirun, else
    the folder's name. The table shows ~14 characters, so what tells runs apart comes first.
    Trials of the same name share a row in TensorBoard."""
    parts = run_dir.parts
    stamp = re.compile(r"\d{4}-\d\d-\d\d_(\d\d)-(\d\d)-(\d\d)")
    for i in range(len(parts) - 1, 1, -1):
        match = stamp.fullmatch(parts[i])
        if match and parts[i - 1] in ("runs", "multiruns"):
            job = "#" + "/".join(parts[i + 1 :]) if i + 1 < len(parts) else ""
            return f"{':'.join(match.groups())}{job} {parts[i - 2]}"
    return run_dir.name


def curated(params: Mapping[str, Any], data: str, model: str) -> dict[str, Any]:
    """The HPARAMS table's settings of a run (CURATED), keyed `<n> <column>` so that
    TensorBoard's order by name keeps CURATED's; a value the run lacks is left out."""
    augment = any(
        v not in (0, None, False, "None") for k, v in params.items() if k.startswith("data/augment/")
    )
    derived = {"model": f"{model} · {data}", "augment": "on" if augment else "off"}
    out = {}
    for i, (column, key) in enumerate(CURATED, 1):
        value = derived.get(column) if key is None else params.get(key)
        if value is not None:
            out[f"{i} {column}"] = value
    return out


def _write(folder: Path, *summaries: Any) -> None:
    # Imported here: tensorboard (and the boto3 it pulls in when installed) costs 0.5 s of
    # start-up that a run without a TensorBoard logger need not pay.
    from torch.utils.tensorboard.writer import FileWriter

    writer = FileWriter(str(folder))  # the public writer, a file of its own in that folder
    for summary, step in summaries:
        writer.add_summary(summary, step)
    writer.close()


def _plugin_summary(tag: str, **content: Any) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    data = HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **content)
    plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString())
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def _drop_epoch(logger: TensorBoardLogger) -> None:
    """Stop `logger` writing Lightning's `epoch` scalar: housekeeping that led Time Series."""
    if getattr(logger, "_hwr_no_epoch", False):
        return
    log_metrics = logger.log_metrics

    def without_epoch(metrics: Mapping[str, float], step: int | None = None) -> None:
        log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)

    logger.log_metrics = without_epoch  # type: ignore[method-assign]
    logger._hwr_no_epoch = True  # type: ignore[attr-defined]


def log_hparams(loggers: Sequence[Logger], params: Mapping[str, Any], data: str, model: str) -> None:
    """Start the run's HPARAMS session in its own event folder: CURATED first, then `params`
    (`data`, `model`: the dataset's and network's names). The same `params` go to the logger's
    hparams.yaml; DDP ranks 1..N-1 log nothing."""
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import SessionStartInfo

    for logger in _tensorboards(loggers):
        _drop_epoch(logger)
        logger.log_hyperparams(dict(params))  # hparams.yaml only: default_hp_metric is off
        info = SessionStartInfo(group_name=trial_name(Path(logger.save_dir)), start_time_secs=time.time())
        for name, value in {**curated(params, data, model), **params}.items():
            if isinstance(value, bool):
                info.hparams[name].bool_value = value
            elif isinstance(value, int | float):
                info.hparams[name].number_value = float(value)
            else:
                info.hparams[name].string_value = str(value)
        _write(
            Path(logger.log_dir),
            (_plugin_summary(metadata.SESSION_START_INFO_TAG, session_start_info=info), None),
        )


def session_metrics(objective: str | None) -> dict[str, str]:
    """The HPARAMS table's metric columns, in order: {scalar series: column title}. The
    run's objective leads as `objective (<name>)`; every run has the same columns (a value it
    lacks stays empty: MNIST has no case-folded accuracy)."""
    names = dict.fromkeys([k for k in (objective, *HPARAMS_METRICS) if k])
    return {SERIES.get(k, k): (f"objective ({k})" if k == objective else k) for k in names}


def _experiment(metrics: Mapping[str, str]) -> Any:
    """The experiment summary: the CURATED setting columns, whatever this run has of them (an
    eval run has no learning rate: TensorBoard may take its summary for every run's), then the
    metric columns."""
    from tensorboard.plugins.hparams import api_pb2, metadata

    experiment = api_pb2.Experiment(time_created_secs=time.time())
    for i, (column, key) in enumerate(CURATED, 1):
        # numbers as numbers (sorted, filtered by range); no discrete domain for the words:
        # TensorBoard would hide the runs whose value it does not list
        kind = api_pb2.DATA_TYPE_FLOAT64 if key is not None else api_pb2.DATA_TYPE_STRING
        experiment.hparam_infos.add(name=f"{i} {column}", display_name=column, type=kind)
    for tag, title in metrics.items():
        experiment.metric_infos.add(name=api_pb2.MetricName(tag=tag), display_name=title)
    return _plugin_summary(metadata.EXPERIMENT_TAG, experiment=experiment)


def _session_end(status: str) -> Any:
    """A session-end summary: success for a completed run, unknown for an interrupted or
    untrained one. A job that failed writes none, so its trial stays "running"."""
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import SessionEndInfo

    code = api_pb2.STATUS_SUCCESS if status == "completed" else api_pb2.STATUS_UNKNOWN
    info = SessionEndInfo(status=code, end_time_secs=time.time())
    return _plugin_summary(metadata.SESSION_END_INFO_TAG, session_end_info=info)


def end_hparams_session(
    loggers: Sequence[Logger], record: Mapping[str, Any], objective: str | None, step: int
) -> None:
    """End the run's HPARAMS session with the record's status, in the run's event folder: the
    experiment summary (columns), the metrics no curve holds (FROM_RECORD) at `step`, the end."""
    from torch.utils.tensorboard.summary import scalar

    experiment = _experiment(session_metrics(objective))
    once = [
        (scalar(k, float(record[k])), step) for k in FROM_RECORD if isinstance(record.get(k), int | float)
    ]
    for logger in _tensorboards(loggers):
        summaries = [
            (experiment, None),
            *once,
            (_session_end(str(record.get("status"))), step),
        ]
        _write(Path(logger.log_dir), *summaries)


def _short(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) else str(value)


def flat_hparams(cfg: DictConfig, groups: Sequence[str] = ("data", "model")) -> dict[str, Any]:
    """Flatten the training-relevant part of `cfg` into `{"model/net/channels": "[32, 64]", ...}`.

    `_target_` becomes the class name; `_partial_` flags and the values taken from `paths`
    (where things are on a machine, not how the model was trained) are dropped. Also adds
    seed, max_epochs and precision. Values are TensorBoard-friendly scalars or strings.
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any, raw: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_partial_" or (isinstance(raw[key], str) and "${paths." in raw[key]):
                    continue
                name = "class" if key == "_target_" else key
                walk(f"{prefix}/{name}", value.rsplit(".", 1)[-1] if key == "_target_" else value, raw[key])
        else:
            out[prefix] = _short(node)

    container = OmegaConf.to_container(cfg, resolve=True)
    unresolved = OmegaConf.to_container(cfg, resolve=False)
    for group in groups:
        if group in container:
            walk(group, container[group], unresolved[group])
    if "seed" in container:
        out["seed"] = _short(container["seed"])
    for key in ("max_epochs", "precision"):
        if key in container.get("trainer", {}):
            out[f"trainer/{key}"] = _short(container["trainer"][key])
    return out
