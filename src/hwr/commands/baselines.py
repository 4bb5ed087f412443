"""`hwr baselines data=...` (or `python baselines.py`): k-nearest neighbours and random forest baselines.

They see exactly the split and preprocessing of the DataModule (pixels scaled to [0, 1]) and
write the same report and metrics.json as the networks, one folder per method, so the two
compare one to one.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from hwr.data.base import build_datamodule
from hwr.errors import HwrError
from hwr.evaluation.figures import TestOutputs
from hwr.evaluation.report import MAX_MISTAKES, write_report
from hwr.runs import tables
from hwr.runs.console import log
from hwr.runs.entry import command
from hwr.runs.record import Run


def make_estimator(method: str, cfg: DictConfig, seed: int):
    """The scikit-learn estimator for `method` ("knn" or "rf")."""
    try:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.neighbors import KNeighborsClassifier
    except ImportError as e:
        raise HwrError(
            'baselines need scikit-learn: uv sync --extra baselines, or pip install -e ".[baselines]"'
        ) from e
    if method == "knn":
        return KNeighborsClassifier(n_neighbors=cfg.knn.k, weights=cfg.knn.weights, n_jobs=cfg.n_jobs)
    if method == "rf":
        return RandomForestClassifier(
            n_estimators=cfg.rf.n_estimators,
            max_depth=cfg.rf.max_depth,
            min_samples_leaf=cfg.rf.min_samples_leaf,
            n_jobs=cfg.n_jobs,
            random_state=seed,
            verbose=1,  # progress: one line per batch of trees
        )
    raise HwrError(f"baselines.methods: unknown method {method!r}; use knn and/or rf")


def flat_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W] -> float32 [N, H*W] in [0, 1]."""
    return images.reshape(len(images), -1).float().div_(255)


def full_probs(estimator, x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """predict_proba with a column for every class (classes absent from training get 0)."""
    probs = torch.zeros(len(x), num_classes)
    probs[:, torch.as_tensor(estimator.classes_)] = torch.as_tensor(
        estimator.predict_proba(x.numpy())
    ).float()
    return probs


@command("baselines")
def run_baselines(cfg: DictConfig, run: Run) -> dict[str, dict[str, Any]]:
    """Fit and test every method of cfg.baselines.methods; return their metrics."""
    dm = build_datamodule(cfg.data)
    dm.setup()
    train_images, train_labels = dm.train_set.images, dm.train_set.labels
    if cfg.baselines.train_on_val:
        train_images = torch.cat([train_images, dm.val_set.images])
        train_labels = torch.cat([train_labels, dm.val_set.labels])
    cap = cfg.baselines.max_train_samples
    if cap and len(train_labels) > cap:
        keep = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(cfg.seed))[:cap]
        train_images, train_labels = train_images[keep], train_labels[keep]
    x_train, x_test = flat_pixels(train_images), flat_pixels(dm.test_set.images)
    y_test = dm.test_set.labels

    results = {}
    for method in cfg.baselines.methods:
        estimator = make_estimator(method, cfg.baselines, cfg.seed)
        started = time.time()
        log.info("%s: fitting on %d images of %d pixels", method, len(x_train), x_train.shape[1])
        estimator.fit(x_train.numpy(), train_labels.numpy())
        fitted = time.time()
        log.info("%s: predicting %d test images", method, len(x_test))
        probs = full_probs(estimator, x_test, dm.num_classes)
        correct = probs.argmax(dim=1) == y_test
        wrong = torch.nonzero(~correct).flatten()[:MAX_MISTAKES]
        outputs = TestOutputs(probs, y_test, dm.test_set.images[wrong].unsqueeze(1).float(), wrong)
        folder = run.folder.sub(method)
        metrics: dict[str, Any] = {"test/acc": float(correct.float().mean())}
        if cfg.get("report", True):
            report = write_report(outputs, dm.class_names, folder.sub("report"))
            metrics.update(report.metrics)
            tables.print_report(report)
        metrics.update(
            task=cfg.task_name,
            data=dm.name,
            model=method,
            train_samples=len(x_train),
            overrides=list(run.overrides),
            params=OmegaConf.to_container(cfg.baselines[method]),
            fit_time_s=round(fitted - started, 1),
            wall_time_s=round(time.time() - started, 1),
            output_dir=str(folder.path),
        )
        path = run.write_record(metrics, folder)
        tables.print_metrics(metrics, title=f"baseline {method}: {dm.name}  ({path})")
        results[method] = metrics
    return results


main = run_baselines.main
