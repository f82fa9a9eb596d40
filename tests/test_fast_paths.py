"""The faster code paths compute what the library paths they replace compute.

* :mod:`detpretrain.models.roi_align` against ``torchvision.ops.roi_align`` / ``MultiScaleRoIAlign``: outputs and
  gradients equal up to float rounding, on boxes inside, across and outside the border, below one pixel, with and
  without ``aligned``, for several sampling ratios and on every FPN level;
* :class:`detpretrain.data.builders.FlipToFloatNormalize` against the ``transforms.v2`` chain it stands for:
  identical values and identical random draws;
* :class:`detpretrain.data.builders.KeptDecoded`: decodes a file once, and not beyond its budget.
"""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.transforms import v2

from detpretrain.data.builders import IMAGENET_MEAN, IMAGENET_STD, FlipToFloatNormalize, KeptDecoded
from detpretrain.models.roi_align import GatherMultiScaleRoIAlign, roi_align_levels


def _grad(out: torch.Tensor, inputs):
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    return torch.autograd.grad((out * weights).sum(), inputs)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [1, 2, 3])
def test_single_level_equals_torchvision(aligned, sampling_ratio):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 10, 12, generator=g, requires_grad=True)
    rois = torch.tensor([[0, -3.0, -2.0, 5.0, 6.0],      # crosses the top-left border
                         [1, 8.0, 7.0, 14.0, 13.0],      # crosses the bottom-right border
                         [0, 2.2, 3.3, 2.4, 3.5],        # below one pixel
                         [1, 0.0, 0.0, 12.0, 10.0],      # the whole map
                         [0, 20.0, 20.0, 30.0, 30.0]])   # entirely outside: zeros
    ref = roi_align(x, rois, (3, 4), 0.9, sampling_ratio, aligned)
    ours = roi_align_levels([x], rois, None, [0.9], (3, 4), sampling_ratio, aligned)
    assert torch.allclose(ours, ref, atol=1e-6)
    assert torch.allclose(_grad(ours, x)[0], _grad(ref, x)[0], atol=1e-6)


def test_multiscale_pooler_equals_torchvision_on_every_level():
    g = torch.Generator().manual_seed(0)
    feats = {k: torch.randn(3, 8, s, s, generator=g) for k, s in zip("0123", (128, 64, 32, 16))}
    boxes = []
    for _ in range(3):
        xy = torch.rand(40, 2, generator=g) * 500
        wh = torch.rand(40, 2, generator=g) ** 2 * 500 + 0.5
        boxes.append(torch.cat([xy, (xy + wh).clamp(max=512)], 1))
    boxes[0][:2] = torch.tensor([[0.0, 0.0, 512.0, 512.0], [511.5, 511.5, 512.0, 512.0]])
    shapes = [(512, 512)] * 3
    ref_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    our_pool = GatherMultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    results = []
    for pool in (ref_pool, our_pool):
        leaves = {k: v.clone().requires_grad_() for k, v in feats.items()}
        out = pool(leaves, boxes, shapes)
        results.append((out, _grad(out, list(leaves.values()))))
    (ref, ref_grads), (ours, our_grads) = results
    assert len(set(ref_pool.map_levels(boxes).tolist())) == 4  # the boxes reach every level
    assert ours.shape == ref.shape == (120, 8, 7, 7)
    assert torch.allclose(ours, ref, atol=1e-5)
    for a, b in zip(our_grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-5)
    assert our_pool.state_dict().keys() == ref_pool.state_dict().keys()


def test_pooler_without_boxes():
    feats = {"0": torch.randn(1, 4, 8, 8)}
    out = GatherMultiScaleRoIAlign(["0"], 7, 2)(feats, [torch.zeros(0, 4)], [(32, 32)])
    assert out.shape == (0, 4, 7, 7)


@pytest.mark.parametrize("hflip", [True, False])
def test_flip_to_float_normalize_equals_the_v2_chain(hflip):
    chain = v2.Compose(([v2.RandomHorizontalFlip(0.5)] if hflip else [])
                       + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    ours = FlipToFloatNormalize(hflip)
    images = [tv_tensors.Image(torch.randint(0, 256, (3, 9, 7), dtype=torch.uint8)) for _ in range(40)]
    outputs = []
    for transform in (chain, ours):
        torch.manual_seed(3)
        outputs.append(([transform(im).as_subclass(torch.Tensor) for im in images], torch.rand(1)))
    (ref, ref_next), (got, got_next) = outputs
    assert all(torch.equal(a, b) for a, b in zip(ref, got))
    assert torch.equal(ref_next, got_next)  # the same number of random draws


def test_kept_decoded_decodes_once_within_its_budget():
    calls = []

    def loader(path):
        calls.append(path)
        return torch.zeros(1024, dtype=torch.uint8)

    kept = KeptDecoded(loader, budget_mb=2048 / 2**20)  # room for two images
    for path in ["a", "b", "c", "a", "b", "c"]:
        kept(path)
    assert calls == ["a", "b", "c", "c"]
