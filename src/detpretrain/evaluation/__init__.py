"""Evaluation: detection AP at any IoU thresholds (:mod:`~detpretrain.evaluation.detection`: VOC07 11-point,
VOC all-point and COCOeval) and segmentation mIoU with trimap bands (:mod:`~detpretrain.evaluation.segmentation`)."""
