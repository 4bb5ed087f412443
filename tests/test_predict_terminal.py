"""`hwr predict` as a person sees it: in a terminal 80 columns wide (tmux) and piped, on
long folder names; its progress; its `--help`."""

from __future__ import annotations

import os
import re
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT

from hwr.evaluation.names import lookalike_names
from hwr.runs import predict_view

TMUX = "/usr/bin/tmux"
needs_tmux = pytest.mark.skipif(not Path(TMUX).exists(), reason=f"no tmux at {TMUX}: apt-get install tmux")
# one `label prob` pair: "Z 0.570", "l (small L) 0.600"
PAIR = r"\S+(?: \([a-z ]+ ?[A-Za-z]*\))? [01]\.\d{3}"
PAIRS = re.compile(rf"^{PAIR}(?:  {PAIR})*$")
NAMES = lookalike_names(string.digits + string.ascii_letters)


def long_folders(data_dir: Path, root: Path) -> list[Path]:
    """The same three English scans in two writers' folders, under folder names of ~60
    characters: rows that only their folder's head tells apart."""
    scans = sorted((data_dir / "english" / "Img").glob("*.png"))[::13][:3]
    base = root / ("batch_of_scanned_forms_received_" + "x" * 28) / ("nested_" + "y" * 53)
    copies = []
    for writer in ("writer_one_" + "w" * 49, "writer_two_" + "w" * 49):
        (base / writer).mkdir(parents=True)
        copies += [Path(shutil.copy(scan, base / writer / scan.name)) for scan in scans]
    return copies


def table_rows(lines: list[str]) -> list[list[str]]:
    """The cells of each body row of a Rich table (between the heading rule and the bottom)."""
    rule = next(i for i, line in enumerate(lines) if line.startswith("├"))
    body = [line for line in lines[rule + 1 :] if line.startswith("│")]
    return [[cell.strip() for cell in line.strip("│").split("│")] for line in body]


def check_screen(text: str, copies: list[Path]) -> None:
    """No line past 80 columns, one row per image with a distinct path, every pair whole."""
    lines = text.splitlines()
    too_long = [line for line in lines if len(line.rstrip()) > 80]
    assert not too_long, "\n".join(too_long)
    rows = table_rows(lines)
    assert len(rows) == len(copies), text
    shown = [row[0] for row in rows]
    assert len(set(shown)) == len(copies), shown
    assert all(cell.endswith(copy.name) for cell, copy in zip(shown, copies, strict=True))
    for _, prediction, *others in rows:
        assert PAIRS.match(prediction), prediction
        assert all(PAIRS.match(cell) for cell in others), others


def in_tmux(command: list[str], cwd: Path, width: int = 80, timeout: float = 300) -> str:
    """`command`'s screen in a tmux window `width` columns wide, wrapped lines joined (a line
    longer than the window comes back longer than `width`)."""
    socket, done = f"hwr-test-{os.getpid()}", "__hwr_test_done__"
    shell = f"cd {cwd} && {' '.join(command)}; echo {done}; sleep 600"
    tmux = [TMUX, "-L", socket]
    subprocess.run([*tmux, "new-session", "-d", "-x", str(width), "-y", "50", shell], check=True)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p", "-J", "-S", "-", "-E", "-"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if done in screen:
                return screen.split(done)[0]
            time.sleep(0.5)
        raise AssertionError(f"predict did not finish in {timeout} s:\n{screen}")
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)


@pytest.mark.slow  # two processes
@needs_tmux
def test_predict_fits_80_columns_in_a_terminal_and_piped(english_run, data_dir, tmp_path):
    copies = long_folders(data_dir, tmp_path / "in")
    ckpt = english_run[0] / "checkpoints" / "best.ckpt"
    args = [sys.executable, str(ROOT / "predict.py"), f"ckpt_path={ckpt}", f"inputs=[{tmp_path / 'in'}]"]
    screen = in_tmux(args, tmp_path)
    check_screen(screen, copies)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # Rich's 80
    piped = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert piped.returncode == 0, piped.stderr[-2000:]
    check_screen(piped.stdout, copies)
    assert all(len(line) <= 80 for line in piped.stderr.splitlines()), piped.stderr


@pytest.mark.slow  # a process
def test_help_says_what_predict_takes(tmp_path):
    shown = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    for needed in (
        "ckpt_path=",
        "inputs=",
        "folders",
        "glob",
        ".txt",
        "top_k=",
        "output=",
        "--json",
        "examples:",
    ):
        assert needed in text, f"{needed!r} missing from --help:\n{text}"
    for private in ("_base", "_optuna", "Hydra", "hparams_search"):
        assert private not in text, f"{private!r} in --help:\n{text}"


def row(source: str, labels: str = "l1IO0", true: str | None = None) -> dict:
    out = {
        "source": source,
        "label": labels[0],
        "top": [{"label": c, "prob": p} for c, p in zip(labels, (0.6, 0.3, 0.05, 0.03, 0.02), strict=False)],
    }
    return out if true is None else {**out, "true": true, "correct": true == labels[0]}


def test_the_table_names_look_alikes_and_drops_the_shared_folder(capsys):
    rows = [row("/data/scans/a.png", true="l"), row("/data/scans/b.png", "1lI", true="l")]
    predict_view.print_table(rows, NAMES, ["accuracy 0.5000 (1/2 labelled images)"])
    printed = capsys.readouterr().out
    assert "l (small L) 0.600" in printed and "1 (one) 0.300" in printed
    assert "images in /data/scans/" in printed and "│ a.png" in printed and "/data/scans/a.png" not in printed
    assert "l (small L) ✗" in printed  # the wrong row is marked without colour too
    assert printed.rstrip().endswith("accuracy 0.5000 (1/2 labelled images)")


def test_a_short_path_keeps_what_tells_it_apart():
    paths = [f"writer_{w}_{'q' * 50}/img{i}.png" for w in "ab" for i in range(3)]
    for width in (18, 24, 40):  # from 17 on, "writer_a…img0.png" fits
        shown = predict_view.shorten(paths, width)
        assert all(len(s) <= width for s in shown) and len(set(shown)) == len(paths)
        assert all(s.endswith(p[-8:]) for s, p in zip(shown, paths, strict=True))
    assert predict_view.shorten(["a.png", "b.png"], 10) == ["a.png", "b.png"]


def test_fewer_pairs_rather_than_a_wrapped_line():
    images, others = ["img001.png"], [["1 (one) 0.300", "I (capital i) 0.050", "O (capital o) 0.030"]]
    assert predict_view.layout(images, others, fixed=40, width=200) == (10, 3)
    image_width, k = predict_view.layout(images, others, fixed=40, width=80)
    assert k == 1 and image_width + len(others[0][0]) <= 40


def test_progress_piped_is_a_few_lines(capsys):
    with predict_view.progress(1000) as advance:
        for _ in range(0, 1000, 10):
            advance(10)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "predicting 1000 images" and lines[-1].startswith("1000/1000 images")
    assert len(lines) == 5
    with predict_view.progress(predict_view.PROGRESS_FROM - 1) as advance:
        advance(predict_view.PROGRESS_FROM - 1)
    assert capsys.readouterr().err == ""


def test_the_summary_breaks_lines_between_pairs_only():
    items = [f"0 (zero) as O (capital o) {n}" for n in (27, 22, 20, 19, 16)]
    lines = predict_view.packed("most confused (true as predicted, count):", items, 80)
    assert all(len(line) <= 80 for line in lines) and len(lines) > 1
    assert " ".join(line.strip() for line in lines).endswith(", ".join(items))
