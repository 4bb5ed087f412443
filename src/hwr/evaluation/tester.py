"""The test pass: a `TrainedModel` on a test set, with the metrics and report of every run.

`hwr train` tests its best checkpoint this way after fitting and `hwr eval` tests any
checkpoint (or ensemble) this way, so a model is tested through the very path that predict,
export and serve use: `TrainedModel.log_probs` (test-time shifts and ensembles folded in).
"""

from __future__ import annotations

import lightning as L
import torch

from hwr.evaluation.casefold import grouped_accuracy
from hwr.evaluation.metrics import build_metrics, log_eval_batch
from hwr.inference.model import TrainedModel


class Tester(L.LightningModule):
    """`trainer.test(Tester(trained), datamodule=dm)`: test/loss, test/acc, test/f1, top-5.

    `test_step` returns the log-probabilities for hwr.evaluation.report.TestReport and
    hwr.evaluation.casefold.GroupedMetrics; the loss uses the checkpoint's label smoothing,
    so test/loss matches the training run's.
    """

    def __init__(self, trained: TrainedModel):
        super().__init__()
        self.trained = trained
        self.net = trained.net  # a submodule, so the Trainer moves it to its device
        self.metrics = build_metrics(len(trained.classes))

    @property
    def class_names(self) -> list[str]:
        return self.trained.class_names

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        log_probs = self.trained.log_probs(x)
        smoothing = float(self.trained.hparams.get("label_smoothing") or 0.0)
        log_eval_batch(self, "test", self.metrics, log_probs, y, smoothing)
        return log_probs


@torch.inference_mode()
def score(trained: TrainedModel, dm: L.LightningDataModule, prefix: str = "start") -> dict[str, float]:
    """`trained`'s accuracy on `dm`'s test split without a Trainer: `<prefix>/acc`, case-folded,
    and per source of a mix (`<prefix>/<source>/acc`). What `init_from` starts from, measured
    on the test split the run will be tested on, so a fine-tuning shows before and after."""
    dm.setup("test")
    preds = []
    for images, _ in dm.test_dataloader():  # uint8 batches, made network-ready as a Trainer does
        x = dm.transform_batch(images.to(trained.device), train=False)
        preds.append(trained.log_probs(x).argmax(1).cpu())
    preds = torch.cat(preds)
    targets = dm.test_set.labels.cpu()
    spans_of = getattr(dm, "source_spans", None)
    spans = spans_of("test") if spans_of is not None else []
    out = {f"{prefix}/acc": float((preds == targets).float().mean())}
    return out | grouped_accuracy(preds, targets, trained.class_names, prefix, spans)
