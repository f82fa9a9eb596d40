"""Eigenspectrum analysis (Shinya et al. 2019): second moments, eigenvalues, intrinsic dimensionality, widths,
parameter / MAC counts, epoch checkpoints, and the study's run chain at the smoke profile."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from detpretrain.analysis import eigenspectrum as E
from detpretrain.errors import ConfigError


def test_second_moment_matches_numpy_over_images_of_different_sizes():
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(5, 3, 4, generator=g), torch.randn(5, 2, 7, generator=g), torch.randn(5, 6, 6, generator=g)]
    acc = E.SecondMoment(5)
    acc.update(maps[:1])
    acc.update(maps[1:])
    expected = np.zeros((5, 5))
    for f in maps:  # independent: loop over positions, outer products
        x = f.double().numpy().reshape(5, -1)
        expected += sum(np.outer(x[:, p], x[:, p]) for p in range(x.shape[1])) / x.shape[1]
    expected /= len(maps)
    assert acc.count == 3 and acc.positions == 3 * 4 + 2 * 7 + 6 * 6
    np.testing.assert_allclose(acc.matrix().numpy(), expected, rtol=1e-12)


def test_second_moment_rejects_wrong_channels_and_empty():
    acc = E.SecondMoment(4)
    with pytest.raises(ValueError, match="no feature map"):
        acc.matrix()
    with pytest.raises(ValueError, match=r"C=4"):
        acc.update(torch.zeros(1, 3, 2, 2))


def test_eigenspectrum_and_intrinsic_dimensionality_on_a_known_matrix():
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
    lam = np.array([10.0, 1.0, 0.1, 5e-3, 5e-4, 0.0])
    sigma = torch.tensor(q @ np.diag(lam) @ q.T)
    ev = E.eigenspectrum(sigma)
    np.testing.assert_allclose(ev, lam, atol=1e-12)
    assert E.intrinsic_dimensionality(ev) == 4  # 10, 1, 0.1, 5e-3 > 1e-3
    assert E.intrinsic_dimensionality(ev, 1e-3, "max") == 3  # / 10: 1, 0.1, 0.01 > 1e-3; 5e-4 is not
    assert E.intrinsic_dimensionality(ev, 1e-3, "trace") == 3  # / 11.1055
    assert list(E.threshold_sensitivity(ev, [1e-5, 1e-2, 2.0])) == [5, 3, 1]
    with pytest.raises(ConfigError, match="normalisation"):
        E.normalised(ev, "l2")


def test_layer_second_moments_of_a_detector_match_a_manual_forward():
    from detpretrain.models.detection import build_faster_rcnn

    torch.manual_seed(0)
    model = build_faster_rcnn(3, arch="resnet_tiny", fpn_channels=16, representation_size=32, min_size=64,
                              max_size=64, anchor_sizes=(8, 16, 32, 48, 64))
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    sig = E.layer_second_moments(model, images, batch_size=2)
    assert list(sig) == [*E.STAGES, *E.FPN_LEVELS]
    assert sig["layer4"].shape == (128, 128) and sig["fpn0"].shape == (16, 16)
    model.eval()
    with torch.no_grad():
        x, _ = model.transform(images)
        feats = model.backbone.body(x.tensors)
    f = feats["3"].double()  # layer4 = Conv5
    manual = torch.stack([fi.reshape(128, -1) @ fi.reshape(128, -1).T / fi[0].numel() for fi in f]).mean(0)
    # float32 features from batches of 2 + 1 vs one batch of 3: equal up to float32 rounding
    torch.testing.assert_close(sig["layer4"], manual, rtol=1e-3, atol=1e-5)


def test_widths_from_dimensionality_rounds_up_and_never_widens():
    assert E.widths_from_dimensionality([10, 32, 63, 200], original=(16, 32, 64, 128)) == (16, 32, 64, 128)
    assert E.widths_from_dimensionality([3, 17, 40, 90], original=(16, 32, 64, 128)) == (8, 24, 40, 96)
    # Bottleneck: output channels = 4 x planes
    assert E.widths_from_dimensionality([100, 300, 700, 1500], expansion=4, original=(64, 128, 256, 512)) == \
        (32, 80, 176, 376)
    with pytest.raises(ConfigError, match="4 stages"):
        E.widths_from_dimensionality([1, 2, 3], original=(1, 2, 3, 4))


def test_count_macs_of_a_convolution_and_a_linear_layer_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    # 8 output channels x 10 x 12 positions x (3 x 3 x 3) multiply-accumulates each
    assert E.count_macs(conv, torch.zeros(1, 3, 10, 12)) == 8 * 10 * 12 * 27
    assert E.count_macs(nn.Linear(20, 5), torch.zeros(4, 20)) == 4 * 20 * 5
    assert E.count_parameters(conv) == 8 * 27


def test_epoch_checkpoints_are_kept_and_change_the_hash_only_when_set(tmp_path, corpus_dir):
    from detpretrain.config import config_hash
    from detpretrain.engine import fit
    from detpretrain.experiments.common import pretrain_configs, target_spec
    from detpretrain.experiments.detection import finetune_config
    from detpretrain.profiles import get_profile
    from detpretrain.runs import RunStore

    prof = get_profile("smoke")
    base = finetune_config(prof, "scratch", 0, target_spec(prof), pretrain_configs(prof))
    import dataclasses

    keep = dataclasses.replace(base, optim=dataclasses.replace(base.optim, keep_epoch_checkpoints=True, epochs=2))
    assert config_hash(dataclasses.replace(base, optim=dataclasses.replace(base.optim, keep_epoch_checkpoints=False))) \
        == config_hash(base)
    assert config_hash(keep) != config_hash(dataclasses.replace(keep, optim=dataclasses.replace(
        keep.optim, keep_epoch_checkpoints=False)))
    store = RunStore(tmp_path)
    run = store.run_for(keep)
    run.path.mkdir(parents=True)
    fit(keep, run, store, device="cpu", progress=False)
    kept = run.epoch_checkpoints()
    assert list(kept) == [0, 1, 2]
    final = torch.load(run.model_path, weights_only=True)
    last = torch.load(kept[2], weights_only=True)
    first = torch.load(kept[0], weights_only=True)
    assert all(torch.equal(final[k], last[k]) for k in final)
    assert not torch.equal(first["backbone.body.conv1.weight"], last["backbone.body.conv1.weight"])


def test_later_fields_keep_the_hashes_of_existing_runs():
    from detpretrain.config import (
        LATER_FIELDS,
        TrainConfig,
        config_hash,
        from_dict,
        hashed_dict,
        to_dict,
    )
    from detpretrain.experiments.common import synthetic_spec

    cfg = TrainConfig(name="x", task="detection", data=synthetic_spec("smoke", "voc"))
    d = hashed_dict(cfg)
    for part, fields in LATER_FIELDS.items():
        assert not set(fields) & set(d[part])
    assert from_dict(to_dict(cfg)) == cfg and config_hash(from_dict(to_dict(cfg))) == config_hash(cfg)


def test_eigen_config_rules():
    from detpretrain.experiments.eigenspectrum import eigen_config
    from detpretrain.experiments.common import pretrain_configs, target_spec
    from detpretrain.profiles import get_profile

    prof = get_profile("mini")
    pre, target = pretrain_configs(prof), target_spec(prof)
    i = eigen_config(prof, "imagenet-cls", 0, target, pre)
    s = eigen_config(prof, "scratch", 0, target, pre, scratch_factor=3)
    n = eigen_config(prof, "scratch-narrow", 0, target, pre, scratch_factor=3, widths=(8, 16, 32, 64))
    assert i.init.startswith("run:") and s.init is None and i.optim.keep_epoch_checkpoints
    assert s.optim.epochs == 3 * i.optim.epochs and s.optim.milestones == tuple(3 * m for m in i.optim.milestones)
    assert n.model.widths == (8, 16, 32, 64) and n.optim == s.optim
    with pytest.raises(ConfigError, match="widths"):
        eigen_config(prof, "scratch-narrow", 0, target, pre)
    with pytest.raises(ConfigError, match="unknown detector"):
        eigen_config(prof, "detection", 0, target, pre)


@pytest.mark.slow
def test_eigenspectrum_study_at_smoke(corpus_dir, smoke_store):
    from detpretrain.analysis.eigenspectrum import (
        accuracy_units,
        cost_table,
        final_dimensionality_table,
    )
    from detpretrain.experiments.eigenspectrum import run_eigenspectrum_study
    result = run_eigenspectrum_study("smoke", store=smoke_store, device="cpu", n_images=16,
                                     progress=False, log=lambda line: None)
    assert {r["pretrain"] for r in result["runs"]} == {"imagenet-cls", "scratch", "scratch-narrow"}
    narrow = [r for r in result["runs"] if r["pretrain"] == "scratch-narrow"][0]
    spectra = result["spectra"][narrow["run"]]
    assert list(spectra) == [0, 1, 2, 3, 4]  # smoke: 2 fine-tuning epochs x scratch_factor 2, plus the start
    assert len(spectra[4]["layer4"]) == result["widths"][3]
    assert result["positions"]["layer4"] == 16 * 2 * 2  # 16 images, 64 px / 32 = 2 x 2 positions each
    costs = cost_table(result).set_index("detector")
    assert costs.loc["scratch-narrow", "body params"] <= costs.loc["scratch", "body params"]
    assert costs.loc["imagenet-cls", "body params"] == costs.loc["scratch", "body params"]
    table = final_dimensionality_table(result)
    assert (table[("mean", "scratch")] <= table[("channels", "")]).all()
    assert not result["narrow_is_scratch"]
    # a threshold every eigenvalue passes keeps the original widths: S is reused, nothing new is trained
    before = sorted(p.name for p in smoke_store.root.iterdir())
    same = run_eigenspectrum_study("smoke", store=smoke_store, device="cpu", n_images=16,
                                   threshold=-1.0, progress=False, log=lambda line: None)
    assert same["narrow_is_scratch"] and same["widths"] == same["original_widths"]
    assert sorted(p.name for p in smoke_store.root.iterdir()) == before
    by = {d: sorted(r["run"] for r in same["runs"] if r["pretrain"] == d) for d in ("scratch", "scratch-narrow")}
    assert by["scratch-narrow"] == by["scratch"]
    assert (accuracy_units(same, "scratch-narrow", "scratch")["diff"] == 0.0).all()


def test_per_layer_separation_table_labels_each_layer_unadjusted():
    """Claim 1's per-layer table on hand-made spectra: I's spectra (3 pre-training replicates) are flat, S's steep,
    each with a little run-to-run noise, so every layer's I-S distance exceeds the seed-to-seed one; the label column
    says it is each layer's own interval (the chapter's claims table adjusts), and an absent layer is left out."""
    rng = np.random.default_rng(0)
    flat, steep = np.ones(8), 0.5 ** np.arange(8)
    runs, spectra = [], {}
    for i, (pre, base) in enumerate([("imagenet-cls", flat)] * 3 + [("scratch", steep)] * 3):
        name = f"run{i}"
        runs.append({"run": name, "pretrain": pre, "replicate": i % 3})
        spectra[name] = {0: {"layer1": flat}, 5: {layer: base * (1 + 0.01 * rng.random(8)) for layer in E.STAGES}}
    t = E.spectral_claim1_table({"runs": runs, "spectra": spectra})
    assert t["layer"].tolist() == list(E.STAGES)
    assert list(t.columns) == ["layer", "distance I-S", "seed-to-seed distance", "participation ratio I",
                               "participation ratio S", "excess", "ci_low", "ci_high", "label (unadjusted)"]
    assert (t["distance I-S"] > 10 * t["seed-to-seed distance"]).all() and (t["ci_low"] > 0).all()
    assert set(t["label (unadjusted)"]) == {"holds"}
    assert t["participation ratio I"].to_numpy() == pytest.approx(np.full(4, 8.0), rel=0.02)
