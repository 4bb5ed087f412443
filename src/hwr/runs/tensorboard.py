"""TensorBoard's HPARAMS tab: one session per run, with the few metrics that decide between runs.

TensorBoard lists as a session's metrics every scalar tag in the session's folder and below
it, sorted by name, and ticks the first five: with the training curves in the same folder,
`epoch` and `lr-AdamW` lead and the objective is hidden among 14. So the session lives in a
folder of its own, named by data and model (`<logger dir>/mnist_MLP`), which holds only the
run's objective and HPARAMS_METRICS, written when it ends (`session_metrics`). The trial's
name in the table (`trial_name`) leads with what tells runs apart: the table cuts it to ~16
characters.

No experiment record is written: TensorBoard would take one run's record for every run under
--logdir and hide the hyperparameters that only other runs have (an MLP's `hidden` beside a
CNN's `channels`); without one it shows the union.
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

# after the run's objective (val/acc_best for train, test/acc for eval), the registry's
# hparams metrics (test/acc_casefold only for class sets with both cases; then train_time_s
# is the one left out)
HPARAMS_METRICS = tuple(hparams_metrics())
MAX_METRICS = 5  # what the HPARAMS tab shows without unticking anything


def _tensorboards(loggers: list[Logger]) -> list[TensorBoardLogger]:
    return [lg for lg in loggers if isinstance(lg, TensorBoardLogger)] if rank_zero_only.rank == 0 else []


def session_dir(logger: TensorBoardLogger, data: str, model: str) -> Path:
    """The folder of a run's HPARAMS session: beside nothing but its own metrics."""
    return Path(logger.log_dir) / f"{data}_{model}"


def trial_name(run_dir: Path, data: str, model: str) -> str:
    """The trial's name in the HPARAMS table: what tells runs apart first (the time of a
    timestamped run folder, else the folder's name: a job number, trial_007), then data and
    model, then the folder itself. The table shows about 16 characters of it, and the folder
    keeps it unique (TensorBoard merges trials of the same name into one row)."""
    stamp = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)_(\d\d)-(\d\d)-(\d\d)(.*)", run_dir.name)
    lead = f"{stamp[4]}:{stamp[5]}:{stamp[6]} {stamp[2]}-{stamp[3]}{stamp[7]}" if stamp else run_dir.name
    return f"{lead} · {data}_{model} · {run_dir}"


def _write(folder: Path, *summaries: Any) -> None:
    # Imported here: tensorboard (and the boto3 it pulls in when installed) costs 0.5 s of
    # start-up that a run without a TensorBoard logger need not pay.
    from torch.utils.tensorboard.writer import FileWriter

    writer = FileWriter(str(folder))  # the public writer, a file of its own in that folder
    for summary, step in summaries:
        writer.add_summary(summary, step)
    writer.close()


def session_metrics(record: Mapping[str, Any], objective: str | None) -> dict[str, float]:
    """The HPARAMS metrics of a run record, numbers only: the objective as
    `objective (val/acc_best)` (the tab sorts columns by name: this one comes first), then
    HPARAMS_METRICS."""
    keys = dict.fromkeys([k for k in (objective, *HPARAMS_METRICS) if k])
    numbers = {k: float(record[k]) for k in keys if isinstance(record.get(k), int | float)}
    named = {(f"objective ({k})" if k == objective else k): v for k, v in numbers.items()}
    return dict(list(named.items())[:MAX_METRICS])


def log_hparams(loggers: list[Logger], params: Mapping[str, Any], data: str, model: str) -> None:
    """Start the run's HPARAMS session (`data`, `model`: its name) with its hyperparameters;
    DDP ranks 1..N-1 log nothing. The same values go to the logger's hparams.yaml, which
    stays empty otherwise."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    from torch.utils.tensorboard.summary import hparams

    for logger in _tensorboards(loggers):
        logger.log_hyperparams(dict(params))  # hparams.yaml only: default_hp_metric is off
        _experiment, session_start, _end = hparams(dict(params), {})
        plugin = session_start.value[0].metadata.plugin_data
        content = HParamsPluginData.FromString(plugin.content)
        content.session_start_info.group_name = trial_name(Path(logger.save_dir), data, model)
        plugin.content = content.SerializeToString()
        _write(session_dir(logger, data, model), (session_start, None))


def _session_end(status: str) -> Any:
    """A session-end summary: success for a completed run, unknown for an interrupted or
    untrained one (torch's `hparams` only writes success). A job that failed writes none, so
    its trial stays "running"."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo

    code = api_pb2.STATUS_SUCCESS if status == "completed" else api_pb2.STATUS_UNKNOWN
    info = SessionEndInfo(status=code, end_time_secs=time.time())
    content = HParamsPluginData(session_end_info=info, version=metadata.PLUGIN_DATA_VERSION)
    plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString())
    return Summary(
        value=[Summary.Value(tag=metadata.SESSION_END_INFO_TAG, metadata=SummaryMetadata(plugin_data=plugin))]
    )


def end_hparams_session(
    loggers: list[Logger], record: Mapping[str, Any], objective: str | None, step: int
) -> None:
    """Write the run's HPARAMS metrics at `step` and end its session (named by the record's data
    and model) with the record's status."""
    from torch.utils.tensorboard.summary import scalar

    metrics = session_metrics(record, objective)
    for logger in _tensorboards(loggers):
        _write(
            session_dir(logger, record["data"], record["model"]),
            *((scalar(name, value), step) for name, value in metrics.items()),
            (_session_end(str(record.get("status"))), step),
        )


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
