"""detpretrain: an executable companion to Li et al. 2019, "An Analysis of Pre-Training on Object Detection".

Sub-packages: ``data`` (standard-format readers and the embedded synthetic corpus), ``models`` (torchvision
backbones and detectors), ``evaluation`` (AP over IoU thresholds), ``engine`` (training loops), ``runs``
(content-addressed run store) and ``profiles`` (smoke / mini / paper presets).
"""

__version__ = "0.1.0"
