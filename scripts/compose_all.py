"""Write every composed config hwr ships as resolved YAML, one file each: every data x model
pair, experiment, debug preset, trainer, and each command. Two versions of hwr compared:

    uv run scripts/compose_all.py /tmp/before   # (on the other version)
    uv run scripts/compose_all.py /tmp/after && diff -r /tmp/before /tmp/after
"""

import sys
from pathlib import Path

from omegaconf import OmegaConf

from hwr.config import compose_config

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
BASE = ["paths.output_dir=/OUT", "paths.data_dir=/DATA", "paths.cache_dir=/CACHE"]
DATA = ["mnist", "emnist", "english", "folder", "idx", "mix"]
MODELS = ["mlp", "cnn", "cnn_deep", "resnet"]
EXPERIMENTS = [
    "mnist_cnn",
    "mnist_mlp",
    "mnist_speedrun",
    "english_cnn",
    "english_mlp",
    "emnist_cnn",
    "chars62_cnn",
]
DEBUG = ["fdr", "limit", "overfit", "profiler"]
jobs = {}
for d in DATA:
    for m in MODELS:
        jobs[f"train__data={d}__model={m}"] = ("train", [f"data={d}", f"model={m}"])
for e in EXPERIMENTS:
    jobs[f"train__experiment={e}"] = ("train", [f"experiment={e}"])
for g in DEBUG:
    jobs[f"train__debug={g}"] = ("train", [f"debug={g}"])
for t in ["default", "cpu", "gpu", "gpu_fast", "ddp"]:
    jobs[f"train__trainer={t}"] = ("train", [f"trainer={t}"])
jobs["train__callbacks=early_stopping"] = ("train", ["callbacks=early_stopping"])
jobs["eval"] = ("eval", ["ckpt_path=/CKPT"])
jobs["eval__data=english"] = ("eval", ["ckpt_path=/CKPT", "data=english"])
for name in ["predict", "export", "serve"]:
    jobs[name] = (name, ["ckpt_path=/CKPT"] + (["inputs=[a.png]"] if name == "predict" else []))
jobs["explore"] = ("explore", [])
jobs["baselines"] = ("baselines", [])
for key, (name, overrides) in jobs.items():
    base = BASE
    cfg = compose_config(name, base + overrides)
    text = OmegaConf.to_yaml(cfg, resolve=True, sort_keys=True)
    (out / f"{key}.yaml").write_text(text)
print(f"{len(jobs)} configs in {out}")
