"""`hwr explore data=...` (or `python explore.py`): look at a dataset before training on it.

Writes to `outputs/explore/<data>/` (replacing its own files from an earlier look) and to
TensorBoard: class histograms per split, a sample
grid per class, chosen characters side by side, mean image per class, the mean-pixel
profile, a summary table, and the configured augmentation before/after (or a line saying
that none is configured).
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from hwr.data.augment import AugmentConfig, augment_batch
from hwr.data.base import CharDataModule, build_datamodule
from hwr.data.sets import LabelledImages, exact_repeats
from hwr.errors import HwrError
from hwr.evaluation.figures import class_ticks, new_figure
from hwr.evaluation.names import labelled, lookalike_names
from hwr.runs import console
from hwr.runs.console import log
from hwr.runs.entry import command
from hwr.runs.record import Run

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def image_grid(
    images: torch.Tensor,
    rows: int,
    cols: int,
    titles: list[str] | None = None,
    size: float = 1.1,
    row_labels: list[str] | None = None,
) -> Figure:
    """A figure with images [N, H, W] (uint8 or float) on a rows x cols grid; `titles` above
    single images, `row_labels` left of each row (one name per row reads better than the
    same name over every image of it)."""
    fig = new_figure(
        figsize=(cols * size + (0.9 if row_labels else 0), rows * size * (1.25 if titles else 1))
    )
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images, strict=False)):
        ax.imshow(
            image.float().numpy(), cmap="gray", vmin=0, vmax=255 if image.dtype == torch.uint8 else None
        )
        if titles:
            ax.set_title(titles[i], fontsize=7, family="monospace")
    for ax, label in zip(axes[:, 0], row_labels or [], strict=False):
        ax.text(
            -0.15, 0.5, label, transform=ax.transAxes, ha="right", va="center", fontsize=9, family="monospace"
        )
    fig.tight_layout()
    return fig


def class_histogram(parts: dict[str, LabelledImages], names: list[str]) -> Figure:
    """Images per class, one bar per split, legend above the bars (not over them)."""
    c = len(names)
    fig = new_figure(figsize=(max(6.0, 0.3 * c + 2), 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(parts)
    for k, (part, data) in enumerate(parts.items()):
        counts = torch.bincount(data.labels, minlength=c).numpy()
        ax.bar([i + (k - (len(parts) - 1) / 2) * width for i in range(c)], counts, width=width, label=part)
    class_ticks(ax, "x", names)
    ax.set_xlim(-0.6, c - 0.4)
    ax.set_ylabel("images")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(parts), frameon=False)
    ax.set_title("images per class", pad=22)
    return fig


def per_class_samples(data: LabelledImages, names: list[str], per_class: int, gen: torch.Generator) -> Figure:
    """`per_class` random images of every class, one row per class, the class named on its left."""
    picks = []
    for c in range(len(names)):
        members = torch.nonzero(data.labels == c).flatten()
        chosen = members[torch.randperm(len(members), generator=gen)[:per_class]]
        picks.append(data.images[chosen])
        if len(chosen) < per_class:
            picks.append(torch.zeros(per_class - len(chosen), *data.images.shape[1:], dtype=torch.uint8))
    lookalikes = lookalike_names(names)
    labels = [labelled(name, lookalikes) for name in names]
    return image_grid(torch.cat(picks), len(names), per_class, size=0.8, row_labels=labels)


def augmentation_figure(sample: torch.Tensor, augment: AugmentConfig, gen: torch.Generator) -> Figure:
    """`sample` [N, H, W] before and after the configured augmentation; with none configured,
    one row and a line saying so (two identical rows would look like a broken augmentation)."""
    n = len(sample)
    if not augment.enabled:
        fig = image_grid(sample, 1, n, size=0.9)
        fig.set_size_inches(fig.get_figwidth(), fig.get_figheight() + 0.6)  # room for the two lines
        fig.suptitle(
            "no augmentation configured (set data.augment.rotate/shift/scale/elastic or "
            "thickness/blur/contrast/lowres, e.g. data.augment.shift=3)\ntraining images as they are:",
            fontsize=9,
        )
        fig.tight_layout()
        return fig
    # the training path's own function, on its [0, 1] scale (the appearance part clamps to it)
    augmented = augment_batch(sample.unsqueeze(1).float() / 255, augment, gen)[:, 0] * 255
    fig = image_grid(torch.cat([sample.float(), augmented]), 2, n, size=0.9, row_labels=["before", "after"])
    fig.set_size_inches(fig.get_figwidth(), fig.get_figheight() + 0.3)
    ranges = {"shift": "±{:g} px", "rotate": "±{:g}°", "scale": "±{:g}", "elastic": "{:g} px"}
    ranges |= {"thickness": "p {:g}", "blur": "σ ≤ {:g} px", "contrast": "−{:g}", "lowres": "p {:g}"}
    on = ", ".join(
        f"{k} {fmt.format(getattr(augment, k))}" for k, fmt in ranges.items() if getattr(augment, k)
    )
    fig.suptitle(f"augmentation ({on}): each image before and after one random draw", fontsize=9)
    fig.tight_layout()
    return fig


def pixel_profile(means: torch.Tensor, names: list[str]) -> Figure:
    """Mean pixel value (ink coverage) of every class from its mean image [C, H, W] (0..255): one
    bar per class, as the classes are categories; a line would suggest an order between them."""
    fig = new_figure(figsize=(max(8.0, 0.2 * len(names) + 2), 3), layout="constrained")
    ax = fig.subplots()
    ax.bar(range(len(names)), (means / 255).mean(dim=(1, 2)).numpy(), width=0.7, color="#4c72b0")
    class_ticks(ax, "x", names)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("mean pixel")
    ax.set_title("mean pixel value per class (ink coverage)")
    return fig


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
    # exact repeats (pixel for pixel, after preprocessing): across splits they leak, within one
    # they weigh an image twice (counted by the DataModule's setup when it had every split)
    out["exact_repeats"] = dm.repeats or exact_repeats(parts)
    if "train" in parts and "val" in parts:
        # the training pool (train + val, no test image): what a DataModule's MEAN/STD are measured on
        pool = torch.cat([parts["train"].images, parts["val"].images]).double() / 255
        out["train_pool"] = {
            "pixel_mean": round(float(pool.mean()), 4),
            "pixel_std": round(float(pool.std()), 4),
        }
    return out


@command("explore")
def explore(cfg: DictConfig, run: Run) -> dict[str, Any]:
    """Write every exploration figure and the summary; return the summary."""
    dm = build_datamodule(cfg.data)
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
        m = max(len(p) for p in picks)  # a class with fewer images is padded: rows stay rows
        figures["chars"] = image_grid(
            torch.cat([torch.cat([p, torch.zeros(m - len(p), *p.shape[1:], dtype=p.dtype)]) for p in picks]),
            len(chars),
            m,
            row_labels=[labelled(ch, lookalike_names(names)) for ch in chars],
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
    lookalikes = lookalike_names(names)
    titles = [labelled(name, lookalikes) for name in names]
    figures["mean_per_class"] = image_grid(means, (len(names) + cols - 1) // cols, cols, titles)
    figures["mean_pixel_profile"] = pixel_profile(means, names)

    sample = main_part.images[torch.randperm(len(main_part), generator=gen)[:16]]
    figures["augmentation"] = augmentation_figure(sample, dm.augment, gen)

    logger = TensorBoardLogger(str(run.path), name="tensorboard", version="")
    written = []
    for name, figure in figures.items():
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=100)
        written.append(run.folder.write_bytes(f"{name}.png", png.getvalue(), "a figure").name)
        logger.experiment.add_figure(f"explore/{name}", figure, close=True)
    logger.experiment.flush()

    result = summary(parts, dm)
    result["augment"] = vars(dm.augment)
    saved = run.folder.write_text("summary.json", json.dumps(result, indent=2) + "\n", "the summary")
    written.append(saved.name)
    console.print_dataset(result, list(parts), f"{dm.name}: {dm.num_classes} classes ({run.path})")
    log.info("wrote %d files in %s: %s", len(written), run.path, ", ".join(written))
    log.info("tensorboard --logdir %s (IMAGES: explore/*)", run.path / "tensorboard")
    return result


main = explore.main
