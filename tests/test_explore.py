"""`hwr explore`: its figures read right and it says what it wrote."""

from __future__ import annotations

import logging
import string

import torch
from helpers import make_config

from hwr.commands.explore import pixel_profile


def test_mean_pixel_profile_draws_a_bar_per_class_not_a_line():
    names = list(string.digits + string.ascii_letters)
    means = torch.linspace(10, 120, len(names))[:, None, None].expand(-1, 28, 28)
    ax = pixel_profile(means, names).axes[0]
    assert not ax.get_lines()  # classes are categories: nothing joins one to the next
    heights = [bar.get_height() for bar in ax.patches]
    assert len(heights) == 62 and heights[0] < heights[-1]
    assert abs(heights[-1] - 120 / 255) < 1e-6  # the class's mean pixel, on a 0..1 scale
    assert [t.get_text() for t in ax.get_xticklabels()] == names


def test_explore_lists_what_it_wrote(data_dir, tmp_path, caplog):
    from hwr.commands.explore import explore

    out = tmp_path / "explore"
    with caplog.at_level(logging.INFO, logger="hwr"):
        explore(make_config("explore", ["data=english"], data_dir, out))
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("wrote ")]
    written = line.split(": ", 1)[1].split(", ")
    assert "mean_pixel_profile.png" in written and "summary.json" in written
    assert line.startswith(f"wrote {len(written)} files in {out}")
    assert all((out / name).is_file() for name in written)
    assert any(f"tensorboard --logdir {out / 'tensorboard'}" in r.getMessage() for r in caplog.records)


def test_explore_counts_exact_repeats_within_and_across_splits(data_dir, tmp_path, capsys):
    """The English fixture draws each class's bar from 3 positions, cropped to the same pixels:
    its splits repeat one another, and explore says how much."""
    import json

    from hwr.commands.explore import explore

    result = explore(make_config("explore", ["data=english"], data_dir, tmp_path / "explore"))
    repeats = result["exact_repeats"]
    assert set(repeats) == {
        "within train",
        "within val",
        "within test",
        "test in train",
        "val in train",
        "test in val",
    }
    assert repeats["test in train"] > 0 and repeats["within train"] > 0
    assert json.loads((tmp_path / "explore" / "summary.json").read_text())["exact_repeats"] == repeats
    assert f"test in train {repeats['test in train']}" in capsys.readouterr().out
