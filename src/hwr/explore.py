"""`python explore.py data=...`: look at a dataset before training on it.

Writes to `outputs/explore/<data>/` and to TensorBoard: class histograms per split, a sample
grid per class, chosen characters side by side, mean image per class, the mean-pixel
profile, a summary table, and the configured augmentation before/after.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import hydra
import rich
import rich.table
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from hwr.cli import hydra_main
from hwr.data.augment import random_affine
from hwr.data.base import CharDataModule, LabelledImages
from hwr.errors import HwrError
from hwr.report import new_figure
from hwr.utils.run import start_run

log = logging.getLogger("hwr")


def image_grid(images: torch.Tensor, rows: int, cols: int, titles: list[str] | None = None, size=1.1):
    """A figure with images [N, H, W] (uint8 or float) on a rows x cols grid."""
    fig = new_figure(figsize=(cols * size, rows * size * (1.25 if titles else 1)))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images, strict=False)):
        ax.imshow(
            image.float().numpy(), cmap="gray", vmin=0, vmax=255 if image.dtype == torch.uint8 else None
        )
        if titles:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def class_histogram(parts: dict[str, LabelledImages], names: list[str]):
    c = len(names)
    fig = new_figure(figsize=(max(6.0, 0.3 * c + 2), 4))
    ax = fig.subplots()
    width = 0.8 / len(parts)
    for k, (part, data) in enumerate(parts.items()):
        counts = torch.bincount(data.labels, minlength=c).numpy()
        ax.bar([i + (k - (len(parts) - 1) / 2) * width for i in range(c)], counts, width=width, label=part)
    ax.set_xticks(range(c), names, fontsize=8 if c > 20 else 10)
    ax.set_ylabel("images")
    ax.legend()
    ax.set_title("images per class")
    fig.tight_layout()
    return fig


def per_class_samples(data: LabelledImages, names: list[str], per_class: int, gen: torch.Generator):
    """`per_class` random images of every class, one row per class, titled with the class."""
    picks, titles = [], []
    for c, name in enumerate(names):
        members = torch.nonzero(data.labels == c).flatten()
        chosen = members[torch.randperm(len(members), generator=gen)[:per_class]]
        picks.append(data.images[chosen])
        titles += [name] * len(chosen) + [""] * (per_class - len(chosen))
        if len(chosen) < per_class:
            picks.append(torch.zeros(per_class - len(chosen), *data.images.shape[1:], dtype=torch.uint8))
    return image_grid(torch.cat(picks), len(names), per_class, titles, size=0.8)


def summary(parts: dict[str, LabelledImages], dm: CharDataModule) -> dict[str, Any]:
    out: dict[str, Any] = {"dataset": dm.name, "classes": dm.num_classes, "class_names": dm.class_names}
    for part, data in parts.items():
        x = data.images.float() / 255
        counts = torch.bincount(data.labels, minlength=dm.num_classes)
        out[part] = {
            "images": len(data),
            "image_size": list(data.images.shape[1:]),
            "pixel_min": float(x.min()),
            "pixel_max": float(x.max()),
            "pixel_mean": round(float(x.mean()), 4),
            "pixel_std": round(float(x.std()), 4),
            "per_class_min": int(counts.min()),
            "per_class_max": int(counts.max()),
        }
    if "train" in parts and "val" in parts:
        # the training pool (train + val, no test image): what a DataModule's MEAN/STD are measured on
        pool = torch.cat([parts["train"].images, parts["val"].images]).double() / 255
        out["train_pool"] = {
            "pixel_mean": round(float(pool.mean()), 4),
            "pixel_std": round(float(pool.std()), 4),
        }
    return out


def explore(cfg: DictConfig) -> dict[str, Any]:
    """Write every exploration figure and the summary; return the summary."""
    output_dir = start_run(cfg)
    dm: CharDataModule = hydra.utils.instantiate(cfg.data)
    parts: dict[str, LabelledImages] = {}
    for stage, names in (("fit", ("train", "val")), ("test", ("test",))):
        try:
            dm.setup(stage)
        except HwrError as e:  # e.g. EMNIST with test files only: explore what is there
            log.warning("%s", e)
            continue
        for name in names:
            parts[name] = getattr(dm, f"{name}_set")
    if not parts:
        raise HwrError(f"{dm.name}: no split could be loaded")
    main_part = parts.get("train") or parts["test"]
    names, gen = dm.class_names, torch.Generator().manual_seed(cfg.seed)
    figures = {
        "class_histogram": class_histogram(parts, names),
        "samples_per_class": per_class_samples(main_part, names, cfg.explore.per_class, gen),
    }

    chars = [str(c) for c in cfg.explore.chars]
    unknown = [c for c in chars if c not in names]
    if unknown:
        raise HwrError(f"explore.chars: {unknown} are not classes of {dm.name}; classes: {' '.join(names)}")
    if chars:
        n = cfg.explore.samples
        picks = []
        for ch in chars:
            members = torch.nonzero(main_part.labels == names.index(ch)).flatten()
            picks.append(main_part.images[members[torch.randperm(len(members), generator=gen)[:n]]])
        figures["chars"] = image_grid(
            torch.cat(picks),
            len(chars),
            max(len(p) for p in picks),
            [c for c, p in zip(chars, picks, strict=True) for _ in range(len(p))],
        )

    means = torch.stack(
        [
            main_part.images[main_part.labels == c].float().mean(0)
            if (main_part.labels == c).any()
            else torch.zeros(main_part.images.shape[1:])
            for c in range(len(names))
        ]
    )
    cols = min(16, len(names))
    figures["mean_per_class"] = image_grid(means, (len(names) + cols - 1) // cols, cols, names)
    fig = new_figure(figsize=(8, 3))
    ax = fig.subplots()
    ax.plot((means / 255).mean(dim=(1, 2)).numpy(), marker="o")
    ax.set_xticks(range(len(names)), names, fontsize=8 if len(names) > 20 else 10)
    ax.set_ylabel("mean pixel")
    ax.set_title("mean pixel value per class (ink coverage)")
    fig.tight_layout()
    figures["mean_pixel_profile"] = fig

    sample = main_part.images[torch.randperm(len(main_part), generator=gen)[:16]]
    augmented = random_affine(sample.unsqueeze(1).float(), dm.augment, gen)[:, 0]
    figures["augmentation"] = image_grid(
        torch.cat([sample.float(), augmented]), 2, 16, ["before"] * 16 + ["after"] * 16, size=0.9
    )

    logger = TensorBoardLogger(str(output_dir), name="tensorboard", version="")
    for name, figure in figures.items():
        figure.savefig(output_dir / f"{name}.png", dpi=100)
        logger.experiment.add_figure(f"explore/{name}", figure, close=True)
    logger.experiment.flush()

    result = summary(parts, dm)
    result["augment"] = vars(dm.augment)
    (output_dir / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    table = rich.table.Table(title=f"{dm.name}: {dm.num_classes} classes ({output_dir})")
    for column in ("split", "images", "size", "pixel min/max", "mean", "std", "per class min..max"):
        table.add_column(column)
    for part in parts:
        s = result[part]
        table.add_row(
            part,
            str(s["images"]),
            "x".join(map(str, s["image_size"])),
            f"{s['pixel_min']:.2f}/{s['pixel_max']:.2f}",
            f"{s['pixel_mean']:.4f}",
            f"{s['pixel_std']:.4f}",
            f"{s['per_class_min']}..{s['per_class_max']}",
        )
    rich.print(table)
    print("classes:", " ".join(names))
    return result


main = hydra_main("explore")(explore)
