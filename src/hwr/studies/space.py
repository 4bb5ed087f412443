"""A study's search space, written in Hydra's sweep syntax, as Optuna distributions.

    model.optimizer.lr: tag(log, interval(0.0003, 0.01))   -> FloatDistribution(log=True)
    model.net.dropout: interval(0.0, 0.4)                   -> FloatDistribution
    data.batch_size: choice(64, 128, 256)                   -> CategoricalDistribution
    data.augment.shift: range(0, 3)                         -> IntDistribution(0, 2)   (stop excluded)
    model.net.channels: choice([8,16],[16,32])              -> categories "[8,16]", "[16,32]"

The same syntax Hydra's `-m` sweeps read, so a grid sweep and a study name values alike. A
value that is not a sweep (`seed=3`) is fixed: passed to every trial unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hwr.errors import HwrError

PRIMITIVE = (type(None), bool, int, float, str)


def override_value(value: Any) -> str:
    """A value as a command-line override writes it: lists as `[8,16]`, the rest with str()."""
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def short(value: Any) -> str:
    """A sampled value for a person: floats to 4 significant digits."""
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() and abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def distribution(key: str, sweep: Any) -> BaseDistribution:
    """The Optuna distribution of one parsed sweep value (see module docstring)."""
    log = "log" in getattr(sweep, "tags", set())
    if isinstance(sweep, IntervalSweep):
        low, high = float(sweep.start), float(sweep.end)
        if log and low <= 0:
            raise HwrError(f"{key}: tag(log, interval({low}, {high})) needs a lower bound above 0")
        return FloatDistribution(low, high, log=log)
    if isinstance(sweep, RangeSweep):
        start, stop, step = sweep.start, sweep.stop, sweep.step
        count = math.ceil((stop - start) / step)
        if count < 1:
            raise HwrError(f"{key}: range({start}, {stop}, {step}) holds no value")
        last = start + step * (count - 1)
        if all(isinstance(v, int) for v in (start, stop, step)):
            if log and step != 1:
                raise HwrError(f"{key}: tag(log, range(...)) takes no step; use range({start}, {stop})")
            return IntDistribution(start, last, log=log, step=1 if log else step)
        return FloatDistribution(float(start), float(last), log=log, step=None if log else float(step))
    if isinstance(sweep, ChoiceSweep):
        values = [v if isinstance(v, PRIMITIVE) else override_value(v) for v in sweep.list]
        return CategoricalDistribution(values)
    raise HwrError(f"{key}: {sweep!r} is not a search space; use interval(), range() or choice()")


def parse(lines: Iterable[str]) -> list[Override]:
    """Hydra's parse of `key=value` lines; a line Hydra cannot read is one error naming it."""
    parser = OverridesParser.create()
    out = []
    for line in lines:
        try:
            out.extend(parser.parse_overrides([line]))
        except Exception as e:  # noqa: BLE001 - Hydra's parse errors carry a multi-line message
            raise HwrError(f"cannot read the search space entry {line!r}: {str(e).splitlines()[0]}") from e
    return out


def search_space(
    params: Mapping[str, Any] | None, arguments: Iterable[str]
) -> tuple[dict[str, BaseDistribution], list[str]]:
    """(distributions, fixed overrides) from `hydra.sweeper.params` and the command line's
    arguments. A sweep on the command line adds to (or replaces) the config's entry of the same
    key; any other argument is passed to every trial as it is."""
    lines = [f"{k}={v}" for k, v in (params or {}).items()]
    distributions: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for override in parse([*lines, *arguments]):
        key = override.get_key_element()
        if override.is_sweep_override():
            distributions[key] = distribution(key, override.value())
        else:
            distributions.pop(key, None)  # `lr=0.001` on the command line fixes a searched key
            fixed.append(override.input_line)
    return distributions, fixed


def grid(distributions: Mapping[str, BaseDistribution]) -> dict[str, list[Any]]:
    """The values of each key for Optuna's GridSampler: choice() and range() only."""
    out: dict[str, list[Any]] = {}
    for key, d in distributions.items():
        if isinstance(d, CategoricalDistribution):
            out[key] = list(d.choices)
        elif isinstance(d, IntDistribution) and not d.log:
            out[key] = list(range(d.low, d.high + 1, d.step))
        elif isinstance(d, FloatDistribution) and d.step is not None:
            count = round((d.high - d.low) / d.step) + 1
            out[key] = [round(d.low + i * d.step, 12) for i in range(count)]
        else:
            raise HwrError(f"{key}: the grid sampler needs choice() or range() values, not an interval")
    return out
