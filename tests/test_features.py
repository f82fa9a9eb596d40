"""Frozen-backbone features (Tables 5, 6; Figures 3, 6, 7): datasets, Conv5 and detection-head extraction, cache."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from detpretrain.experiments import features as F
from detpretrain.errors import ConfigError, DataError
from detpretrain.models.backbones import build_backbone
from detpretrain.models.detection import build_faster_rcnn
from detpretrain.runs import RunStore


@pytest.fixture(scope="module")
def caltech(corpus_dir):
    return F.probe_datasets("smoke", "caltech")


def test_synthetic_probe_datasets_have_three_splits_and_a_stable_key(caltech):
    assert caltech.paper_name == "CALTECH-256"
    assert (len(caltech.train), len(caltech.val), len(caltech.test)) == (50, 25, 25)
    image, label = caltech.test[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and 0 <= label < len(caltech.classes)
    assert F.probe_datasets("smoke", "caltech").key == caltech.key != F.probe_datasets("smoke", "sun").key


def test_unknown_dataset_and_missing_roots_are_named(tmp_path, corpus_dir):
    with pytest.raises(ConfigError, match="unknown classification dataset 'imagenet'"):
        F.probe_datasets("smoke", "imagenet")
    with pytest.raises(ConfigError, match="needs a data_root"):
        F.probe_datasets("smoke", "pet")
    with pytest.raises(DataError, match="does not exist"):
        F.probe_datasets("smoke", "pet", tmp_path / "nope")
    with pytest.raises(DataError, match="not an Oxford-IIIT Pet root"):
        F.probe_datasets("smoke", "pet", tmp_path)
    (tmp_path / "flowers" / "train" / "1").mkdir(parents=True)
    with pytest.raises(DataError, match="or train/ and test/ class folders"):
        F.probe_datasets("smoke", "flowers102", tmp_path / "flowers")


def test_held_out_split_is_stratified_and_disjoint():
    ds = TensorDataset(torch.zeros(50, 1), torch.tensor([0] * 30 + [1] * 20))
    ds.targets = [0] * 30 + [1] * 20
    train, val = F.held_out_split(ds, 0.2, seed=0)
    assert sorted(train.indices + val.indices) == list(range(50))
    assert Counter(ds.targets[i] for i in val.indices) == {0: 6, 1: 4}
    single = TensorDataset(torch.zeros(3, 1))
    single.targets = [0, 0, 1]
    with pytest.raises(DataError, match="class 1 has a single image"):
        F.held_out_split(single)


def test_real_flowers_and_pet_subsets(flowers_subset, pet_subset):
    flowers = F.probe_datasets("smoke", "flowers102", flowers_subset)
    assert (len(flowers.train), len(flowers.val), len(flowers.test)) == (427, 43, 52)  # the Udacity split
    assert len(flowers.classes) == 10 and not flowers.val_from_train
    assert flowers.test[0][0].shape == (3, 96, 96)  # smoke real_model.image_size
    pet = F.probe_datasets("smoke", "pet", pet_subset)
    assert pet.val_from_train and (len(pet.train), len(pet.val), len(pet.test)) == (120, 30, 60)
    assert set(pet.train.indices).isdisjoint(pet.val.indices)


def test_conv5_features_equal_a_manual_forward_pass(caltech):
    torch.manual_seed(0)
    backbone = build_backbone("resnet_tiny", norm="gn").eval()
    x, y = F.conv5_features(backbone, caltech.test, batch_size=7)
    assert x.shape == (25, backbone.fc.in_features) and x.dtype == np.float32
    assert y.tolist() == [caltech.test[i][1] for i in range(25)]
    with torch.no_grad():
        images = torch.stack([caltech.test[i][0] for i in range(25)])
        h = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(images))))
        h = backbone.layer4(backbone.layer3(backbone.layer2(backbone.layer1(h))))
    np.testing.assert_allclose(x, h.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)


def test_head_features_whole_image_roi(caltech):
    torch.manual_seed(0)
    detector = build_faster_rcnn(5, arch="resnet_tiny", fpn_channels=16, representation_size=32, min_size=64,
                                 max_size=64).eval()
    arrays = F.head_feature_sets(detector, caltech.test, batch_size=10)
    n = 25
    assert arrays["convproj"].shape == (n, 16 * 7 * 7)
    assert arrays["convproj_4x4"].shape == (n, 16 * 16) and arrays["convproj_2x2"].shape == (n, 64)
    assert arrays["fc1"].shape == arrays["fc2"].shape == (n, 32)
    blob = arrays["convproj"].reshape(n, 16, 7, 7)
    np.testing.assert_allclose(arrays["convproj_1x1"], blob.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    # the detector sees the same normalised 64-px image as the bare backbone: Conv5 agrees
    x, _ = F.conv5_features(detector.backbone.body, caltech.test)
    np.testing.assert_allclose(arrays["conv5"], x, rtol=1e-4, atol=1e-5)
    names = F.head_feature_names(arrays)
    assert names["convproj"] == "ConvProj blob (16,7,7)" and names["fc1"] == "FC1 (32)"


def test_scratch_backbones_are_seeded_without_touching_the_global_rng():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, source_a, run = F.load_backbone("scratch", "smoke", seed=0)
    b, _, _ = F.load_backbone("scratch", "smoke", seed=0)
    c, source_c, _ = F.load_backbone("scratch", "smoke", seed=1)
    assert torch.rand(1) == expected_next
    assert run is None and source_a.startswith("scratch-") and source_a.endswith("-s0") and source_c.endswith("-s1")
    assert torch.equal(a.conv1.weight, b.conv1.weight) and not torch.equal(a.conv1.weight, c.conv1.weight)
    with pytest.raises(ConfigError, match="unknown pre-training 'imagenet-21k'"):
        F.load_backbone("imagenet-21k", "smoke")


def test_features_are_cached_in_the_store_and_corrupt_caches_recomputed(caltech, tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs")
    first = F.backbone_features("scratch", caltech, "smoke", store=store, seed=2, splits=("test",))
    files = list((tmp_path / "runs" / "features").rglob("*.npz"))
    assert len(files) == 1 and files[0].parent.name == first["source"]
    calls = []
    monkeypatch.setattr(F, "conv5_features", lambda *a, **k: calls.append(1))
    again = F.backbone_features("scratch", caltech, "smoke", store=store, seed=2, splits=("test",))
    assert calls == [] and np.array_equal(again["test"]["features"], first["test"]["features"])
    files[0].write_bytes(b"not a zip")
    monkeypatch.undo()
    redone = F.backbone_features("scratch", caltech, "smoke", store=store, seed=2, splits=("test",))
    np.testing.assert_array_equal(redone["test"]["features"], first["test"]["features"])


def test_trained_backbone_is_read_from_its_run(caltech, smoke_store):
    store = smoke_store
    model, source, run = F.load_backbone("imagenet-cls", "smoke", store=store, log=lambda *a: None)
    assert run.complete and source == run.hash
    saved = torch.load(run.backbone_path, weights_only=True)
    assert torch.equal(model.layer4[0].conv1.weight, saved["layer4.0.conv1.weight"])
    with pytest.raises(ConfigError, match="not a detection pre-training"):
        F.detector_head_features("imagenet-cls", caltech, "smoke", store=store)


def test_image_attributes_follow_the_annotations(caltech):
    frame = F.image_attributes(caltech, "test")
    assert len(frame) == len(caltech.test)
    coco = json.loads((caltech.root / "annotations.json").read_text())
    ids = {img["file_name"]: img["id"] for img in coco["images"]}
    counts = Counter(a["image_id"] for a in coco["annotations"])
    assert frame["n_objects"].tolist() == [counts[ids[f]] for f in frame["file_name"]]
    assert frame["label"].tolist() == [caltech.classes[caltech.test[i][1]] for i in range(len(frame))]
    assert ((frame["area_fraction"] > 0) & (frame["area_fraction"] <= 1)).all()
    images = F.images_for_display(caltech, "test", [0, 3])
    assert images[0].shape == (64, 64, 3) and 0 <= images[0].min() and images[0].max() <= 1


def test_image_attributes_of_real_images_leave_object_attributes_empty(pet_subset):
    """Real images annotate no objects here: Figure 3's size columns are NaN, its verdict says it is not measured."""
    from detpretrain.analysis import feature_space as S

    data = F.probe_datasets("smoke", "pet", pet_subset)
    attrs = F.split_attributes(data)
    assert len(attrs) == 210 and attrs["log_area"].isna().all() and attrs["n_objects"].isna().all()
    assert set(attrs["label"]) == {"Abyssinian", "American Bulldog", "Bengal"}
    assert attrs.loc[attrs["split"] == "test", "file_name"].iloc[0].endswith(".jpg")
    rng = np.random.default_rng(0)
    spaces = {"a": rng.normal(size=(210, 4)), "b": rng.normal(size=(210, 4))}
    labels = np.array([["Abyssinian", "American Bulldog", "Bengal"].index(x) for x in attrs["label"]])
    near, _ = S.nearest_pair_table(spaces, labels, attrs, {"a": "A", "b": "B"}, 10)
    assert S.size_match_summary(near, "A", "B")["direction"] == "not measured"


def test_corpus_objects_decode_instances_and_parts(caltech, tmp_path):
    from detpretrain.analysis.visualisation import corpus_objects

    names = [Path(caltech.test.image_path(i)).relative_to(caltech.root).as_posix() for i in range(10)]
    objs = corpus_objects(caltech.root, names)
    attrs = F.image_attributes(caltech, "test").head(10)
    assert [len(o["instances"]) for o in objs] == attrs["n_objects"].tolist()
    for o in objs:
        assert o["object"].shape == (64, 64) and not (o["part"] & ~o["object"]).any()  # parts lie on objects
        assert o["object"].sum() == np.logical_or.reduce(o["instances"]).sum()
    assert any(o["part"].any() for o in objs)
    with pytest.raises(DataError, match="not listed"):
        corpus_objects(caltech.root, ["train/nope.jpg"])
    (tmp_path / "annotations.json").write_text("{}")
    with pytest.raises(DataError, match="not a readable annotations.json"):
        corpus_objects(tmp_path, names)
