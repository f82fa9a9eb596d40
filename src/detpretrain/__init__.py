"""detpretrain: an executable companion to Li et al. 2019, "An Analysis of Pre-Training on Object Detection",
with the eigenspectrum study of Shinya et al. 2019 and the frozen-backbone study of Vasconcelos et al. 2022.

Sub-packages and modules, in the order data flows through them:

* ``profiles`` -- smoke / mini / paper presets; ``config`` -- frozen, hashed run configurations;
* ``data`` -- standard-format readers (VOC, COCO, class folders) and the embedded synthetic corpus;
* ``models`` -- torchvision backbones, Faster R-CNN + FPN, DeepLabV3; ``models.build`` builds a run's network;
* ``engine`` -- training and evaluation loops (single process or torchrun DDP);
* ``runs`` -- the content-addressed run store; ``io`` -- atomic writes;
* ``experiments`` -- the paper's experiments as chains of runs, one module per chapter family;
* ``evaluation`` -- AP over IoU thresholds, segmentation mIoU / trimap;
* ``analysis`` -- what each chapter shows: tables, figures, measured effects and verdicts;
* ``book`` / ``cli`` -- executing the chapters with papermill, building the book, the command line.
"""

__version__ = "0.1.0"
