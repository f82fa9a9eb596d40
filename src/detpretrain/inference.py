"""Load a trained run back from the run store and apply it: the analyses' entry point to the models.

The error analyses and visualisations (Table 3, Figures 4, 5, 8) run a finished model again on images; they take
it from the run directory (``config.json`` + ``model.pt`` + ``metrics.json``) instead of retraining.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from detpretrain.config import from_dict
from detpretrain.errors import ConfigError


def load_run_model(run, device: str | torch.device = "cpu"):
    """The trained model of a complete run, in eval mode.

    Args:
        run: a :class:`~detpretrain.runs.Run` or its directory.
        device: where to put the model.

    Returns:
        ``(model, config, classes)``: the ``nn.Module`` (Faster R-CNN for detection runs, ResNet classifier for
        classification runs) with the run's ``model.pt`` loaded, its :class:`~detpretrain.config.TrainConfig` and
        its class names (index = label; detection runs include ``__background__`` at 0).

    Raises:
        ConfigError: the run is not complete (no ``metrics.json`` / ``model.pt``).
    """
    import json

    from detpretrain.engine import build_model

    path = Path(getattr(run, "path", run))
    files = [path / "config.json", path / "metrics.json", path / "model.pt"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"{path}: not a complete run (missing {', '.join(missing)})")
    config = from_dict(json.loads(files[0].read_text(encoding="utf-8")))
    classes = list(json.loads(files[1].read_text(encoding="utf-8"))["classes"])
    model = build_model(config, len(classes))
    model.load_state_dict(torch.load(files[2], map_location="cpu", weights_only=True))
    return model.to(device).eval(), config, classes


@torch.no_grad()
def predict_detections(model, dataset, device: str | torch.device = "cpu", batch_size: int = 4) -> list[dict]:
    """Run a detector over every image of ``dataset`` (evaluation transforms).

    Returns:
        COCO results list: ``{"image_id", "category_id" (= label), "bbox" [x, y, w, h] pixels, "score"}``, in
        dataset order (what :func:`detpretrain.evaluation.detection.match_detections` takes).
    """
    from detpretrain.data.builders import collate_detection
    from detpretrain.evaluation.detection import outputs_to_coco_results

    model.eval()
    results: list[dict] = []
    for images, targets in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_detection):
        outputs = model([img.to(device) for img in images])
        results += outputs_to_coco_results([int(t["image_id"]) for t in targets],
                                           [{k: v.cpu() for k, v in o.items()} for o in outputs])
    return results
