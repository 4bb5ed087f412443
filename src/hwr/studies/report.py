"""What a study adds to its sweep's summary.md: its trials by state, the best trial (or the
Pareto front of two objectives), parameter importances and the optimisation history picture
(`history.png` beside summary.md)."""

from __future__ import annotations

import io
import logging
import math
import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from hwr.evaluation.figures import new_figure
from hwr.files import write_bytes
from hwr.studies import space
from hwr.studies.storage import open_storage

log = logging.getLogger("hwr")


def load(storage: str, study_name: str) -> optuna.Study | None:
    """The study, or None when there is none (yet) in `storage`."""
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        return None


def study_sections(storage: str, study_name: str, objectives: list[str], sweep_dir: Path) -> str:
    """Markdown sections for summary.md (and history.png in `sweep_dir`); "" without a study."""
    study = load(storage, study_name)
    if study is None:
        return ""
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    lines = [
        f"\n## Study {study_name}\n",
        f"{len(trials)} trials: {count[TrialState.COMPLETE]} complete, {count[TrialState.PRUNED]} pruned, "
        f"{count[TrialState.FAIL]} failed, {count[TrialState.RUNNING]} running. "
        f"Storage: `{storage}` (open it live with `optuna-dashboard {storage}`).",
    ]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return "\n".join(lines) + "\n"
    if len(study.directions) == 1:
        best = study.best_trial
        params = ", ".join(f"`{k}={space.short(v)}`" for k, v in best.params.items())
        lines.append(
            f"\nBest: trial {best.number} ({job_name(best)}), {objectives[0]} {best.value:.4f}: {params}"
        )
        lines += importances(study, objectives[0])
        if history_png(study, objectives[0], sweep_dir / "history.png"):
            lines.append("\n## Optimisation history\n\n![optimisation history](history.png)")
    else:
        lines += pareto_front(study, objectives)
    return "\n".join(lines) + "\n"


def job_name(trial: FrozenTrial) -> str:
    from hwr.studies.sweeper import job_folder

    return job_folder(trial.number)


def importances(study: optuna.Study, objective: str) -> list[str]:
    """The fANOVA importance of each parameter for the objective (needs 2+ complete trials)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as e:  # too few trials, or one point in every dimension
        return [f"\nParameter importances: not yet ({e})."]
    rows = [f"| `{k}` | {v:.3f} |" for k, v in found.items()]
    head = (
        f"\n## Parameter importances\n\nShare of the variance of {objective} explained by each "
        "parameter (fANOVA over complete trials).\n"
    )
    return [head, "| parameter | importance |", "|---|---:|", *rows]


def pareto_front(study: optuna.Study, objectives: list[str]) -> list[str]:
    """The trials no other trial beats on every objective, best first on the first objective."""
    front = sorted(
        study.best_trials, key=lambda t: t.values[0], reverse=study.directions[0].name == "MAXIMIZE"
    )
    names = [f"{o} ({d.name.lower()})" for o, d in zip(objectives, study.directions, strict=True)]
    lines = [
        f"\n## Pareto front ({len(front)} trials)\n",
        "No other trial is better on every objective: pick by what matters for shipping.\n",
        "| trial | " + " | ".join(names) + " | parameters |",
        "|---|" + "---:|" * len(names) + "---|",
    ]
    for t in front:
        values = " | ".join(space.short(v) for v in t.values)
        params = " ".join(f"{k}={space.short(v)}" for k, v in t.params.items())
        lines.append(f"| {job_name(t)} | {values} | {params} |")
    return lines


def history_png(study: optuna.Study, objective: str, path: Path) -> bool:
    """Each trial's objective by trial number (pruned trials at their last reported value),
    with the best so far as a line; written to `path`. False when nothing can be drawn."""
    maximize = study.direction.name == "MAXIMIZE"
    done = [
        t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]
    if not done:
        return False
    fig = new_figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    complete = [(t.number, t.value) for t in done if t.state == TrialState.COMPLETE]
    pruned = [
        (t.number, t.intermediate_values[t.last_step])
        for t in done
        if t.state == TrialState.PRUNED and t.last_step is not None
    ]
    if complete:
        ax.scatter(
            *zip(*complete, strict=True), s=22, color="tab:blue", label=f"complete ({objective})", zorder=3
        )
    if pruned:
        ax.scatter(
            *zip(*pruned, strict=True),
            s=22,
            marker="x",
            color="tab:gray",
            label="pruned (last epoch's val/acc)",
        )
    best, steps = -math.inf if maximize else math.inf, []
    for number, value in sorted(complete):
        best = max(best, value) if maximize else min(best, value)
        steps.append((number, best))
    if steps:
        steps.append((max(t.number for t in done), best))  # the line runs to the last trial
        ax.step(*zip(*steps, strict=True), where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_title(f"study {study.study_name}: {len(complete)} complete, {len(pruned)} pruned", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right" if maximize else "upper right")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight")
    write_bytes(path, png.getvalue(), "the study's history picture")
    return True
