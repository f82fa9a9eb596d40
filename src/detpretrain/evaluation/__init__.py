"""Evaluation: detection AP over IoU thresholds (``detection``), segmentation and probe metrics in sibling modules."""

from detpretrain.evaluation.detection import (
    DetectionEvaluator,
    evaluate_command,
    evaluate_detections,
    outputs_to_coco_results,
    parse_iou_thresholds,
    voc_ap,
)

__all__ = [
    "DetectionEvaluator",
    "evaluate_command",
    "evaluate_detections",
    "outputs_to_coco_results",
    "parse_iou_thresholds",
    "voc_ap",
]
