"""`hwr serve ckpt_path=...` (or `python serve.py`): the drawing page and JSON API (hwr.web.api)
for one trained model, on loopback by default."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from hwr import bundled
from hwr.inference.model import TrainedModel
from hwr.runs import console
from hwr.runs.entry import command
from hwr.web.api import MB, create_app
from hwr.web.collect import Collection


@command("serve", run_folder=False)
def serve(cfg: DictConfig) -> None:
    """Load `cfg.ckpt_path` and serve it with uvicorn on `cfg.host`:`cfg.port` until interrupted."""
    import uvicorn

    # One image per request: intra-op threads buy nothing on a batch of one, and with the cores
    # busy OpenMP's waiting threads turned a 0.3 ms forward pass into ~80 ms (on a 2-core VM).
    # Requests run side by side in the thread pool instead (`workers`).
    torch.set_num_threads(1)
    ckpt_path = bundled.default(cfg.ckpt_path, console.note)  # none given: the bundled model, said so
    model = TrainedModel.load(ckpt_path, cfg.device, tta_shift=cfg.get("tta_shift"))
    collection = Collection(cfg.collect, list(model.classes)) if cfg.get("collect") else None
    app = create_app(model, int(cfg.top_k), int(float(cfg.max_upload_mb) * MB), int(cfg.workers), collection)
    console.print_serving(model.info(), cfg.host)
    if collection is not None:
        so_far = collection.counts()["count"]
        console.note(f"corrections from the page go to {collection.folder} ({so_far} so far)")
    uvicorn.run(app, host=cfg.host, port=int(cfg.port), log_level=cfg.log_level)


main = serve.main
