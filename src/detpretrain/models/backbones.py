"""ResNet backbones built with torchvision (Li et al. 2019 use ResNet-101; the CPU profiles use narrower ResNets).

A backbone is a plain :class:`torchvision.models.ResNet`; its ``fc`` layer is the classification head used for
IMAGENET-CLS-style pre-training and is dropped when the backbone goes into a detector. Widths can be set per
stage (``widths``), which the eigenspectrum chapter (Shinya et al. 2019) uses to build a narrower detector.

Weights come from (a) a torchvision weight enum name such as ``"ResNet50_Weights.IMAGENET1K_V2"`` (downloaded by
torchvision on a machine with internet; offline it must already be in the torch hub cache), or (b) a checkpoint
file written by our own runs (a ResNet ``state_dict``, loaded with ``torch.load(weights_only=True)``). A detector's
weights (enum or file) give their ResNet body (``backbone.body.*``): the ``torchvision`` profile's detection
pre-training (COCO role) is the body of ``FasterRCNN_ResNet50_FPN_Weights.COCO_V1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision import models
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.ops import FrozenBatchNorm2d

from detpretrain.errors import ConfigError, RunStoreError
from detpretrain.io import TORCH_LOAD_ERRORS, torch_load_problem

#: name -> (block, layers per stage, default widths per stage (planes), stem width)
ARCHS: dict[str, tuple[type[nn.Module], tuple[int, int, int, int], tuple[int, int, int, int], int]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), (64, 128, 256, 512), 64),
    "resnet34": (BasicBlock, (3, 4, 6, 3), (64, 128, 256, 512), 64),
    "resnet50": (Bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), 64),
    "resnet101": (Bottleneck, (3, 4, 23, 3), (64, 128, 256, 512), 64),
    # CPU profiles: one BasicBlock per stage, a quarter (or eighth) of ResNet-18's width.
    "resnet_tiny": (BasicBlock, (1, 1, 1, 1), (16, 32, 64, 128), 16),
    "resnet_mini": (BasicBlock, (1, 1, 1, 1), (32, 64, 128, 256), 32),
}

NORMS = ("bn", "gn", "frozen_bn")


def group_norm(num_channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups where the width allows it (Wu & He 2018), else the largest power-of-two divisor."""
    groups = math.gcd(32, num_channels)
    return nn.GroupNorm(groups, num_channels)


def norm_layer_factory(norm: str) -> Callable[[int], nn.Module]:
    """Map ``"bn" | "gn" | "frozen_bn"`` to a torchvision ``norm_layer`` callable.

    GroupNorm is the default of the CPU profiles: from-scratch detectors with BatchNorm at batch sizes of 2-8
    train poorly (He et al. 2019, "Rethinking ImageNet pre-training"). ``frozen_bn`` is torchvision's choice for
    detection fine-tuning from ImageNet weights.

    Raises:
        ConfigError: unknown ``norm``.
    """
    if norm == "bn":
        return nn.BatchNorm2d
    if norm == "gn":
        return group_norm
    if norm == "frozen_bn":
        return FrozenBatchNorm2d
    raise ConfigError(f"unknown norm {norm!r}; expected one of {NORMS}")


def stage_channels(arch: str, widths: Sequence[int] | None = None) -> tuple[int, int, int, int]:
    """Output channels of the four residual stages (conv2_x ... conv5_x; Conv5 is the last)."""
    block, _, default_widths, _ = _arch(arch)
    widths = tuple(widths) if widths is not None else default_widths
    return tuple(w * block.expansion for w in widths)  # type: ignore[return-value]


def _arch(arch: str):
    try:
        return ARCHS[arch]
    except KeyError:
        raise ConfigError(f"unknown backbone {arch!r}; expected one of {sorted(ARCHS)}") from None


def build_backbone(
    arch: str = "resnet_tiny",
    *,
    norm: str = "gn",
    num_classes: int = 1000,
    widths: Sequence[int] | None = None,
    weights: str | Path | None = None,
) -> ResNet:
    """Build a torchvision ResNet, optionally narrower per stage, and load weights.

    Args:
        arch: a key of :data:`ARCHS` (``resnet18/34/50/101``, ``resnet_tiny``, ``resnet_mini``).
        norm: ``"bn"``, ``"gn"`` or ``"frozen_bn"`` (see :func:`norm_layer_factory`).
        num_classes: size of the ``fc`` classification head (IMAGENET-CLS-style pre-training).
        widths: planes of the four stages (channels are ``planes * block.expansion``); default the arch's own.
        weights: ``None`` (random init), a torchvision weight enum name ("ResNet50_Weights.IMAGENET1K_V2", or a
            detector's such as "FasterRCNN_ResNet50_FPN_Weights.COCO_V1", of which the ResNet body is loaded:
            :func:`detector_body`), or a path to a ``state_dict`` file (our runs' ``backbone.pt``, a torchvision
            classifier or detector checkpoint). ``fc`` weights are loaded only if their shape matches
            ``num_classes``.

    Returns:
        a ``torchvision.models.ResNet``; input [B, 3, H, W] float, Conv5 output [B, C5, H/32, W/32].

    Raises:
        ConfigError: unknown arch/norm, unknown weight enum, or weights that do not fit the architecture.
        FileNotFoundError: a weights path that does not exist.
        RunStoreError: a weights file that cannot be read (truncated or damaged); names the file and the remedy.
    """
    block, layers, default_widths, stem = _arch(arch)
    widths = tuple(int(w) for w in widths) if widths is not None else default_widths
    if len(widths) != 4 or min(widths) < 1:
        raise ConfigError(f"widths must be 4 positive integers, got {widths}")
    norm_layer = norm_layer_factory(norm)
    model = ResNet(block, list(layers), num_classes=num_classes, norm_layer=norm_layer)
    if widths != (64, 128, 256, 512) or stem != 64:
        _rebuild_widths(model, block, layers, widths, stem, num_classes)
    if weights is not None:
        load_backbone_weights(model, weights)
    return model


def _rebuild_widths(model: ResNet, block, layers, widths, stem: int, num_classes: int) -> None:
    """Re-create stem and stages with other widths, reusing torchvision's own ``ResNet._make_layer``."""
    norm_layer = model._norm_layer
    model.inplanes = stem
    model.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = norm_layer(stem)
    model.layer1 = model._make_layer(block, widths[0], layers[0])
    model.layer2 = model._make_layer(block, widths[1], layers[1], stride=2)
    model.layer3 = model._make_layer(block, widths[2], layers[2], stride=2)
    model.layer4 = model._make_layer(block, widths[3], layers[3], stride=2)
    model.fc = nn.Linear(widths[3] * block.expansion, num_classes)
    for m in model.modules():  # the same initialisation as torchvision's ResNet.__init__
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def load_backbone_weights(model: ResNet, weights: str | Path) -> None:
    """Load a torchvision weight enum (by name) or one of our checkpoint files into ``model`` in place.

    Keys other than ``fc.*`` must match exactly; ``fc.*`` is skipped when its shape differs (a new task head).

    Raises:
        ConfigError: unknown enum name, or missing/unexpected/mis-shaped keys (message lists a few).
        FileNotFoundError: ``weights`` looks like a path and does not exist.
        RunStoreError: a weights file that cannot be read (truncated or damaged).
    """
    state = _read_weights(weights)
    own = model.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    for key in [k for k in state if k.startswith("fc.")]:
        if key not in own or own[key].shape != state[key].shape:
            del state[key]
    missing = [k for k in own if k not in state and not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    state = {k: v for k, v in state.items() if k in own or not k.endswith("num_batches_tracked")}
    unexpected = [k for k in state if k not in own]
    mis_shaped = [k for k in state if k in own and own[k].shape != state[k].shape]
    if missing or unexpected or mis_shaped:
        raise ConfigError(
            f"weights {weights} do not fit this backbone: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"shape mismatch {mis_shaped[:3]} (same arch, widths and norm layer?)"
        )
    model.load_state_dict(state, strict=False)


#: key prefix of the ResNet body in torchvision's detector state dicts (``FasterRCNN_*_FPN_Weights``)
DETECTOR_BODY_PREFIX = "backbone.body."


def detector_body(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ResNet body of a torchvision detector ``state_dict`` (``backbone.body.*`` keys, prefix removed): what a
    detector's pre-training transfers to a new detector. FPN, RPN and box-head keys are left out (re-initialised, as
    the paper re-initialises the detection heads). A plain ResNet ``state_dict`` is returned unchanged."""
    if not any(k.startswith(DETECTOR_BODY_PREFIX) for k in state):
        return state
    return {k[len(DETECTOR_BODY_PREFIX):]: v for k, v in state.items() if k.startswith(DETECTOR_BODY_PREFIX)}


def _read_weights(weights: str | Path) -> dict[str, torch.Tensor]:
    text = str(weights)
    if "_Weights." in text and not Path(text).exists():
        enum_name, _, member = text.partition(".")
        try:
            enum = models.get_weight(text) if hasattr(models, "get_weight") else getattr(getattr(models, enum_name), member)
        except (AttributeError, ValueError, KeyError) as err:
            raise ConfigError(f"unknown torchvision weights {text!r} ({err})") from None
        return detector_body(enum.get_state_dict(progress=False))
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"{path}: weights file does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as err:
        raise RunStoreError(path, f"weights file cannot be read ({torch_load_problem(err)})",
                            "if it is a run's backbone.pt, python -m detpretrain runs verify names the damaged run; "
                            "remove it (runs rm RUN) and execute again to retrain it") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    return detector_body(state)


def backbone_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The ResNet ``state_dict`` (torchvision key names, without ``fc``) of a classifier or of a detector's body.

    Accepts a ``ResNet``, a torchvision ``FasterRCNN`` (takes ``backbone.body``) or either wrapped in DDP.
    """
    model = getattr(model, "module", model)
    if hasattr(model, "backbone") and hasattr(model.backbone, "body"):
        model = model.backbone.body
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
