"""Tests on the real datasets; skipped unless HWR_DATA_DIR points at them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import make_config, needs_real_data

from hwr.commands.eval import evaluate
from hwr.commands.train import train
from hwr.data.emnist import EMNISTDataModule
from hwr.data.english import EnglishDataModule
from hwr.data.mnist import MNISTDataModule
from hwr.errors import HwrError

pytestmark = needs_real_data


@pytest.fixture(scope="module")
def real_dir() -> Path:
    return Path(os.environ["HWR_DATA_DIR"])


def test_mnist_official_files(real_dir):
    dm = MNISTDataModule(real_dir, download=False)
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == 60_000 and len(dm.test_set) == 10_000
    assert dm.test_set.labels.bincount().tolist()[:3] == [980, 1135, 1032]


@pytest.fixture(scope="module")
def mnist_run(real_dir, tmp_path_factory):
    """A short CNN run on real MNIST: 80 batches of 128 (10k images), full test set."""
    out = tmp_path_factory.mktemp("mnist") / "run"
    cfg = make_config(
        "train",
        [
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=80",
            "+trainer.limit_val_batches=2",
            "model.optimizer.lr=0.003",
        ],
        real_dir,
        out,
    )
    return out, train(cfg)


@pytest.mark.slow  # trains on the real MNIST for a minute
def test_short_mnist_cnn_run_learns(mnist_run):
    _, metrics = mnist_run
    assert metrics["test/acc"] > 0.95  # 10k training images, one pass


@pytest.mark.slow  # trains on the real MNIST for a minute
def test_eval_mnist_model_on_emnist_mnist_test_split(mnist_run, real_dir, tmp_path):
    out, _ = mnist_run
    cfg = make_config(
        "eval",
        [f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", "data=emnist", "data.split=mnist"],
        real_dir,
        tmp_path / "eval",
    )
    metrics = evaluate(cfg)
    # EMNIST digits are framed differently from MNIST, but upright: far above the ~15%
    # an MNIST model scores on the transposed (as stored) images.
    assert metrics["test/acc"] > 0.6
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_emnist_byclass_test_split(real_dir):
    dm = EMNISTDataModule(real_dir, split="byclass", download=False)
    dm.setup("test")
    assert len(dm.test_set) == 116_323 and dm.num_classes == 62
    # the first labels of emnist-byclass-test: I a 0 3 X
    assert dm.test_set.labels[:5].tolist() == [18, 36, 0, 3, 33]
    with pytest.raises(HwrError, match="EMNIST byclass train files not found"):
        dm.setup("fit")


def test_emnist_orientation_matches_mnist(real_dir):
    """Class-mean images of EMNIST digits correlate with MNIST's after our transpose."""
    mnist = MNISTDataModule(real_dir, download=False)
    mnist.setup("test")
    emnist = EMNISTDataModule(real_dir, split="mnist", download=False)
    emnist.setup("test")

    def class_means(data):
        x = data.images.float()
        return torch.stack([x[data.labels == c].mean(0).flatten() for c in range(10)])

    a, b = class_means(mnist.test_set), class_means(emnist.test_set)
    upright = torch.stack([torch.corrcoef(torch.stack([a[c], b[c]]))[0, 1] for c in range(10)])
    b_t = class_means(emnist.test_set).view(10, 28, 28).transpose(1, 2).reshape(10, -1)
    stored = torch.stack([torch.corrcoef(torch.stack([a[c], b_t[c]]))[0, 1] for c in range(10)])
    assert upright.mean() > 0.75 and upright.mean() > stored.mean() + 0.2


def test_english_loads_all_images(real_dir):
    dm = EnglishDataModule(real_dir)
    dm.setup()
    assert len(dm.pool) == 3410 and dm.num_classes == 62
    assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 3410
    assert dm.class_names[:3] == ["0", "1", "2"] and dm.class_names[-1] == "z"


@pytest.mark.slow  # decodes English Hnd and trains on the carved EMNIST for about a minute
def test_a_mix_of_carved_emnist_and_english_learns_both(real_dir, tmp_path):
    carved = real_dir / "emnist-carved"
    if not (carved / "EMNIST").is_dir():
        pytest.skip(f"no carved EMNIST at {carved}")
    overrides = [
        "data=mix",
        f"data.sources.emnist.data_dir={carved}",
        "+data.sources.emnist.val_fraction=0.02",  # 1,861 validation images: a CPU minute less
        "data.augment.thickness=0.3",
        "model.net.channels=[16,32]",
        "model.net.head=[64]",
        "model.optimizer.lr=0.003",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=80",
        "report=false",
    ]
    metrics = train(make_config("train", overrides, real_dir, tmp_path / "run"))
    # 80 steps of 128, half of the draws from each source: far above chance (1/62) on both
    assert metrics["test/emnist/acc"] > 0.3 and metrics["test/english/acc"] > 0.15, metrics
    assert metrics["test/acc_casefold"] > metrics["test/acc"]
