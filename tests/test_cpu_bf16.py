"""bfloat16 autocast on the CPU (``OptimSpec.cpu_bf16``, ``--cpu-bf16``, ``$DETPRETRAIN_CPU_BF16``).

What is checked: the switch is part of a run's identity only when on (float32 runs keep their hashes), it reaches every
schedule of a profile and nothing else, a run trained with it really trains under bfloat16 autocast (and one without
it does not, also when ``amp`` asks for CUDA mixed precision on the CPU), every task's loss and gradients under it stay
close to float32's (the detector's own RoIAlign included), a malformed environment value is refused with its name,
and the book treats chapters executed under the switch as stale without it and vice versa. The speed is measured in
``benchmarks/bench_train_loop.py --precision``, not here.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from detpretrain import engine
from detpretrain.book import code_hash
from detpretrain.config import OptimSpec, TrainConfig, config_hash, hashed_dict, replace_path
from detpretrain.errors import ConfigError
from detpretrain.experiments.common import pretrain_configs, target_spec
from detpretrain.experiments.detection import finetune_config
from detpretrain.models.build import build_model
from detpretrain.profiles import CPU_BF16_ENV, PROFILE_NAMES, get_profile, with_cpu_bf16
from detpretrain.runs import RunStore, get_or_train

CPU = torch.device("cpu")


def _scratch(prof=None, epochs: int = 1) -> TrainConfig:
    prof = prof or get_profile("smoke")
    cfg = finetune_config(prof, "scratch", 0, target_spec(prof), pretrain_configs(prof))
    return replace_path(cfg, "optim.epochs", epochs)


def test_float32_runs_keep_their_hash_and_bf16_runs_are_other_runs():
    cfg = _scratch()
    assert cfg.optim.cpu_bf16 is False
    assert "cpu_bf16" not in hashed_dict(cfg)["optim"]  # a field added later, left out at its neutral value
    on = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, cpu_bf16=True))
    assert hashed_dict(on)["optim"]["cpu_bf16"] is True
    assert config_hash(on) != config_hash(cfg)
    assert config_hash(replace_path(cfg, "optim.cpu_bf16", "true")) == config_hash(on)  # --set optim.cpu_bf16=true
    # the mixed-precision policy is part of a mixed-precision run's identity, and of no float32 run's
    import detpretrain.config as C

    mixed = [(c, config_hash(c)) for c in (on, replace_path(cfg, "optim.amp", "true"))]
    plain = config_hash(cfg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "MIXED_PRECISION_POLICY", "another policy")
        assert config_hash(cfg) == plain
        assert all(config_hash(c) != h for c, h in mixed)


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_with_cpu_bf16_sets_every_schedule_and_nothing_else(name):
    prof = get_profile(name)
    on = with_cpu_bf16(prof)
    schedules = [f.name for f in dataclasses.fields(prof) if isinstance(getattr(prof, f.name), OptimSpec)]
    assert len(schedules) == 6
    for field in dataclasses.fields(prof):
        before, after = getattr(prof, field.name), getattr(on, field.name)
        if field.name in schedules:
            assert after.cpu_bf16 and not before.cpu_bf16
            assert dataclasses.replace(after, cpu_bf16=False) == before
        else:
            assert after == before
    assert with_cpu_bf16(on, False) == prof


def test_environment_switches_get_profile(monkeypatch):
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    plain = get_profile("mini")
    assert not plain.finetune.cpu_bf16
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert get_profile("mini") == plain
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert get_profile("mini") == with_cpu_bf16(plain)
    assert all(c.optim.cpu_bf16 for c in pretrain_configs(get_profile("mini")).values())
    for name in PROFILE_NAMES:  # the GPU profiles train with optim.amp: their runs keep their names
        assert get_profile(name).finetune.cpu_bf16 is not get_profile(name).needs_gpu
    monkeypatch.setenv(CPU_BF16_ENV, "yes")
    with pytest.raises(ConfigError, match=rf"\${CPU_BF16_ENV}='yes': expected 1"):
        get_profile("mini")


def test_autocast_dtype_per_device_and_switch():
    assert engine.autocast_dtype(CPU) is None
    assert engine.autocast_dtype(CPU, cpu_bf16=True) is torch.bfloat16
    cfg = _scratch()
    amp_only = replace_path(cfg, "optim.amp", "true")  # CUDA mixed precision: ignored on the CPU
    assert engine.run_autocast_dtype(amp_only, CPU) is None
    assert engine.run_autocast_dtype(replace_path(cfg, "optim.cpu_bf16", "true"), CPU) is torch.bfloat16


def test_native_bf16_respects_onednn_isa_cap(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # below AVX512_CORE_BF16: oneDNN emulates bfloat16
    assert engine.cpu_has_native_bf16() is False
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert engine.cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert engine.cpu_has_native_bf16() is True
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert engine.cpu_has_native_bf16() is True
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert engine.cpu_has_native_bf16() is False


def test_fit_trains_under_bf16_autocast_only_when_asked(corpus_dir, tmp_path, monkeypatch):
    """The run store trains the bf16 config in bfloat16 autocast (the outputs of the layers of
    :data:`engine.DETECTOR_AUTOCAST_PARTS` are bfloat16 during training, the predictors' float32), the float32 config
    without; both finish with finite losses and a test mAP, as two runs."""
    seen: list[tuple[object, set]] = []
    original = engine.train_one_epoch

    def spy(model, *args, **kwargs):
        dtypes: dict[str, set] = {"layers": set(), "predictors": set()}

        def record(part):
            return lambda _m, _i, out: dtypes[part].add(out.dtype)

        hooks = [m.register_forward_hook(record("layers" if name.startswith(engine.DETECTOR_AUTOCAST_PARTS)
                                                else "predictors"))
                 for name, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        try:
            return original(model, *args, **kwargs)
        finally:
            for h in hooks:
                h.remove()
            seen.append((kwargs.get("amp_dtype"), dtypes))

    monkeypatch.setattr(engine, "train_one_epoch", spy)
    store = RunStore(tmp_path / "runs")
    plain = _scratch()
    bf16 = replace_path(plain, "optim.cpu_bf16", "true")
    runs = {name: get_or_train(cfg, store, progress=False) for name, cfg in (("fp32", plain), ("bf16", bf16))}
    # conv and linear outputs: of the backbone, FPN, RPN conv and box head, then of the RPN's and box predictors
    assert seen[0] == (None, {"layers": {torch.float32}, "predictors": {torch.float32}})
    assert seen[1] == (torch.bfloat16, {"layers": {torch.bfloat16}, "predictors": {torch.float32}})
    assert runs["fp32"].path != runs["bf16"].path
    for run in runs.values():
        m = run.metrics
        assert all(torch.isfinite(torch.tensor(h["loss"])) for h in m["history"])
        assert len(m["mAP"]) == len(m["iou_thresholds"]) and all(0.0 <= v <= 100.0 for v in m["mAP"])
    assert runs["bf16"].config.optim.cpu_bf16 and not runs["fp32"].config.optim.cpu_bf16
    env = {name: run.metrics["environment"] for name, run in runs.items()}  # what decided the rounding
    assert env["bf16"]["autocast"] == "bfloat16" and env["fp32"]["autocast"] is None
    for e in env.values():
        assert e["torch"] == torch.__version__ and e["device"] == "cpu" and e["cuda_device"] is None
        assert e["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and e["threads"] >= 1 and e["cpu"]


def test_the_executor_says_how_many_planned_runs_train_in_bf16(corpus_dir, tmp_path):
    from detpretrain.executor import execute
    from detpretrain.plan import make_plan

    store = RunStore(tmp_path / "runs")
    plain = _scratch()
    bf16 = replace_path(plain, "optim.cpu_bf16", "true")
    for cfg in (plain, bf16):
        get_or_train(cfg, store, progress=False)  # complete: the executor trains nothing
    lines: list[str] = []
    execute(make_plan([plain, bf16], store=store), store, jobs=1, threads=1, log_dir=tmp_path / "logs",
            log=lines.append, progress=False)
    assert any(line.startswith("1 of them train in bfloat16 autocast on the CPU") for line in lines), lines
    lines.clear()
    execute(make_plan([plain], store=store), store, jobs=1, threads=1, log_dir=tmp_path / "logs", log=lines.append,
            progress=False)
    assert not any("bfloat16" in line for line in lines), lines


def test_every_task_under_bf16_autocast_stays_close_to_float32(task_step_cases):
    """One training step's loss and gradients of each task's model (the smoke sizes) in bfloat16
    (:func:`engine.mixed_precision`, as training uses it) against float32 from the same weights and inputs: the loss
    within 3 %, the whole gradient's direction kept (cosine > 0.9; measured 0.96-0.98) and every parameter's (cosine
    > 0.75: at random initialisation the first layers' gradients of the detector, after the whole backward pass in
    bfloat16's 8-bit mantissa, keep 0.84-0.9). A broken cast (a sign, a scale, a dropped term) gives cosines far
    below these."""
    cases = task_step_cases()
    for task, (cfg, classes, (x, y)) in cases.items():
        torch.manual_seed(0)
        model = build_model(cfg, classes).train(task != "segmentation")  # DeepLabV3's dropout off
        out = {}
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            model.zero_grad(set_to_none=True)
            torch.manual_seed(1)  # the detector samples anchors and RoIs
            with engine.mixed_precision(model, CPU, dtype):  # as train_one_epoch
                loss = sum(engine.TASK_HOOKS[task].losses(model, x, y, CPU).values())
            loss.backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            out[name] = (float(loss.detach()), grads)
        (l32, g32), (l16, g16) = out["fp32"], out["bf16"]
        assert l16 == pytest.approx(l32, rel=0.03), task
        assert g16.keys() == g32.keys() and g32, task
        cosine = torch.nn.functional.cosine_similarity
        for n, g in g32.items():
            if g.norm() > 1e-6:
                assert cosine(g16[n].flatten(), g.flatten(), dim=0) > 0.75, (task, n)
        whole = cosine(torch.cat([g16[n].flatten() for n in g32]), torch.cat([g.flatten() for g in g32.values()]),
                       dim=0)
        assert whole > 0.9, (task, float(whole))


def test_detector_boxes_stay_float32_under_mixed_precision(task_step_cases):
    """Under :func:`engine.mixed_precision` the detector's layers compute in bfloat16 (a backbone stage, the RPN's
    conv, the box head's FC layers) and hand float32 on (the FPN maps); the box deltas of the RPN and of the box
    predictor, the proposals and the RoI heads' regression targets are float32 (whole-detector autocast makes
    proposals and targets bfloat16: 0.5 px steps at 64-128 px); outside the context nothing is left switched on, also
    after a part raised."""
    cfg, classes, (images, targets) = task_step_cases()["detection"]
    model = build_model(cfg, classes).train()
    seen: dict[str, torch.dtype] = {}
    model.backbone.body.layer1.register_forward_hook(lambda _m, _i, out: seen.__setitem__("conv2_x", out.dtype))
    model.rpn.head.register_forward_pre_hook(lambda _m, args: seen.__setitem__("fpn", args[0][0].dtype))
    model.rpn.head.conv.register_forward_hook(lambda _m, _i, out: seen.__setitem__("rpn conv", out.dtype))
    model.roi_heads.box_head.fc6.register_forward_hook(lambda _m, _i, out: seen.__setitem__("FC1", out.dtype))
    model.roi_heads.box_predictor.bbox_pred.register_forward_hook(
        lambda _m, _i, out: seen.__setitem__("box deltas", out.dtype))
    model.rpn.head.bbox_pred.register_forward_hook(lambda _m, _i, out: seen.__setitem__("rpn deltas", out.dtype))
    filter_proposals = model.rpn.filter_proposals

    def proposals(props, *args, **kwargs):
        seen["proposals"] = props.dtype
        return filter_proposals(props, *args, **kwargs)

    sample = model.roi_heads.select_training_samples

    def regression_targets(props, tgts):
        out = sample(props, tgts)
        seen["regression targets"] = out[3][0].dtype
        return out

    model.rpn.filter_proposals = proposals
    model.roi_heads.select_training_samples = regression_targets
    with engine.mixed_precision(model, CPU, torch.bfloat16):
        engine.TASK_HOOKS["detection"].losses(model, images, targets, CPU)
    assert seen == {"conv2_x": torch.bfloat16, "fpn": torch.float32, "rpn conv": torch.bfloat16,
                    "rpn deltas": torch.float32, "proposals": torch.float32, "FC1": torch.bfloat16,
                    "box deltas": torch.float32, "regression targets": torch.float32}
    assert not torch.is_autocast_enabled("cpu")
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    assert hooks == 6  # the test's own above: mixed_precision removed its hooks

    def fail(*_args, **_kwargs):
        raise RuntimeError("box head failed")

    model.roi_heads.box_head.fc7.forward = fail
    with pytest.raises(RuntimeError, match="box head failed"):
        with engine.mixed_precision(model, CPU, torch.bfloat16):
            engine.TASK_HOOKS["detection"].losses(model, images, targets, CPU)
    assert not torch.is_autocast_enabled("cpu")
    del model.roi_heads.box_head.fc7.forward
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the alternative it avoids
        engine.TASK_HOOKS["detection"].losses(model, images, targets, CPU)
    assert seen["proposals"] == torch.bfloat16 and seen["regression targets"] == torch.bfloat16


def test_cli_switch_sets_the_environment_and_warns_without_native_bf16(monkeypatch, capsys):
    from detpretrain import cli

    import os

    monkeypatch.setenv(CPU_BF16_ENV, "0")  # recorded, so the test's end restores the session's value
    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: False)
    cli._request_cpu_bf16()
    assert os.environ[CPU_BF16_ENV] == "1"
    assert "WARNING: this CPU has no native bfloat16" in capsys.readouterr().err


def test_chapters_executed_in_float32_are_stale_under_bf16(monkeypatch):
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    plain = code_hash()
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert code_hash() == plain
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert code_hash() != plain
