"""FixRes fine-tuning (Appendix C): schedule, settings, data, trainer, resume, and the figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from oodbench.datasets.common import DatasetLayoutError
from oodbench.finetune import schedule as sched
from oodbench.finetune import settings as settings_module
from oodbench.finetune.data import (
    TrainingDataMissing,
    build_demo_train_split,
    holdout_boxes,
    load_training_set,
    locate_train_folder,
    prepare_imagenet_train,
    scan_train_folder,
)
from oodbench.finetune.settings import (
    fixres_entries,
    fixres_name,
    job_settings,
    model_fixres_settings,
    model_schedule,
    parse_fixres_name,
)

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- schedule


def test_schedule_matches_appendix_c_at_batch_2048():
    s = sched.fixres_schedule(batch_size=2048)
    assert s.total_steps == 15_000
    assert s.decay_steps == (5_000, 10_000)
    assert s.peak_lr == pytest.approx(0.004 * 2048 / 256)
    assert s.momentum == 0.9
    assert s.lr_at(0) == pytest.approx(0.032)  # no warm-up: full rate from the first step
    assert s.lr_at(4_999) == pytest.approx(0.032)
    assert s.lr_at(5_000) == pytest.approx(0.0032)
    assert s.lr_at(9_999) == pytest.approx(0.0032)
    assert s.lr_at(10_000) == pytest.approx(0.00032)
    assert s.lr_at(14_999) == pytest.approx(0.00032)


@pytest.mark.parametrize("batch", [256, 512, 1024, 4096])
def test_schedule_scales_lr_and_steps_with_batch(batch):
    s = sched.fixres_schedule(batch_size=batch)
    assert s.peak_lr == pytest.approx(0.004 * batch / 256)
    assert s.total_steps == round(15_000 * batch / 2048)
    assert s.decay_steps == (round(s.total_steps / 3), round(2 * s.total_steps / 3))


def test_bit_models_get_ten_times_smaller_lr():
    assert sched.is_bit_model("resnetv2_101x3_bit.goog_in21k_ft_in1k")
    assert sched.is_bit_model("resnetv2_50x1_bit")
    assert not sched.is_bit_model("resnetv2_50")
    assert not sched.is_bit_model("resnet50")
    assert sched.is_bit_model("resnet50", flag=True)
    assert not sched.is_bit_model("resnetv2_50x1_bit", flag=False)
    normal = sched.fixres_schedule(batch_size=512)
    bit = sched.fixres_schedule(batch_size=512, bit=True)
    assert bit.peak_lr == pytest.approx(normal.peak_lr / 10)
    assert bit.total_steps == normal.total_steps


def test_step_override_keeps_decays_at_thirds():
    s = sched.fixres_schedule(batch_size=16, steps=30)
    assert s.total_steps == 30 and s.decay_steps == (10, 20)
    assert [s.lr_at(i) for i in (9, 10, 20)] == pytest.approx([s.peak_lr, s.peak_lr / 10, s.peak_lr / 100])


def test_micro_batches_sum_to_the_effective_batch():
    assert sched.micro_batches(2048, None) == [2048]
    assert sched.micro_batches(2048, 4096) == [2048]
    assert sched.micro_batches(2048, 512) == [512] * 4
    assert sched.micro_batches(10, 4) == [4, 4, 2]
    with pytest.raises(ValueError, match="micro_batch"):
        sched.micro_batches(10, 0)


# ----------------------------------------------------------------------------- settings


def _config(**fixres):
    return {
        "models": {
            "r50": {"loader": "timm", "timm": "resnet50.a1_in1k", "group": "ResNet"},
            "bit": {"loader": "checkpoint", "timm": "resnetv2_50x1_bit", "checkpoint": "x.npz", "group": "BiT",
                    "fixres": {"batch_size": 512, "micro_batch": 32}},
        },
        "fixres": {"models": ["r50", "bit"], "resolutions": [224, 320], **fixres},
    }


def test_fixres_entries_are_checkpoint_models_predicted_at_their_resolution():
    entries = fixres_entries(_config())
    assert sorted(entries) == ["bit+fixres224", "bit+fixres320", "r50+fixres224", "r50+fixres320"]
    entry = entries["r50+fixres320"]
    assert entry["loader"] == "checkpoint" and entry["timm"] == "resnet50.a1_in1k"
    assert entry["checkpoint"] == "results/checkpoints/r50+fixres320.pth"
    assert entry["resolutions"] == [320] and entry["preprocessing"]["input_size"] == 320
    assert parse_fixres_name("r50+fixres320") == ("r50", 320)
    assert parse_fixres_name("r50") is None
    assert fixres_name("a+b", 64) == "a+b+fixres64" and parse_fixres_name("a+b+fixres64") == ("a+b", 64)
    assert fixres_entries(_config(enabled=False)) == {}


def test_per_model_settings_override_the_block():
    config = _config(micro_batch=128)
    assert model_fixres_settings(config, "r50")["micro_batch"] == 128
    assert model_fixres_settings(config, "bit")["micro_batch"] == 32
    bit = model_schedule(config, "bit")
    assert bit.batch_size == 512 and bit.peak_lr == pytest.approx(0.0004 * 2)
    config["models"]["bit"]["fixres"]["momentum"] = 0.5
    with pytest.raises(ValueError, match="models.bit.fixres: unknown key"):
        model_fixres_settings(config, "bit")
    with pytest.raises(ValueError, match="fixres.models"):
        fixres_entries({**_config(), "fixres": {"models": ["nope"], "resolutions": [224]}})


def test_job_params_carry_only_what_the_fine_tune_reads():
    # finetune_fixres's params (rules/common.smk get_fixres_settings): Snakemake reruns a job
    # whose params change, so options of other jobs must not be in them.
    base = job_settings(_config(), "r50")
    assert set(base) == {"batch_size", "micro_batch", "trainable", "steps", "lr", "bit",
                         "seed", "hflip", "state_every", "num_workers", "amp"}
    wider = _config(resolutions=[64, 224, 320, 512], fig4_datasets=["imagenet_a"],
                    demo_train={"crops_per_photo": 4}, train_dataset="other", imagenet_train_path="x")
    wider["models"]["r101"] = {"loader": "timm", "timm": "resnet101", "group": "ResNet"}
    wider["fixres"]["models"] = ["r50", "bit", "r101"]
    assert job_settings(wider, "r50") == base
    assert job_settings(_config(models=["r50"]), "r50") == base
    for key, value in {"steps": 10, "lr": 0.1, "trainable": "classifier_bn", "batch_size": 256}.items():
        changed = _config()
        changed["models"]["r50"]["fixres"] = {key: value}
        assert job_settings(changed, "r50") != base, key
        assert job_settings(changed, "r50")[key] == value
    assert job_settings(_config(seed=1), "r50") != base
    # The job derives the schedule from these params and the model's entry.
    config = _config()
    assert settings_module.schedule_of(job_settings(config, "bit"), config["models"]["bit"]) == model_schedule(config, "bit")


# ----------------------------------------------------------------------------- data


def _jpeg(path: Path, color, size=(20, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="JPEG")


def test_missing_imagenet_train_names_paths_and_layouts(tmp_path):
    with pytest.raises(TrainingDataMissing) as info:
        locate_train_folder(tmp_path / "raw")
    message = str(info.value)
    assert str(tmp_path / "raw" / "ILSVRC2012_img_train.tar") in message
    assert str(tmp_path / "raw" / "train") in message and "n01440764" in message


def test_nested_train_tar_is_unpacked_and_scanned(tmp_path):
    wnids = ["n00000001", "n00000002", "n00000003"]
    raw = tmp_path / "raw"
    raw.mkdir()
    with tarfile.open(raw / "ILSVRC2012_img_train.tar", "w") as outer:
        for k, wnid in enumerate(wnids):
            class_dir = tmp_path / "src" / wnid
            for i in range(k + 1):
                _jpeg(class_dir / f"{wnid}_{i}.JPEG", (40 * k, 0, 0))
            with tarfile.open(tmp_path / f"{wnid}.tar", "w") as inner:
                for f in sorted(class_dir.iterdir()):
                    inner.add(f, arcname=f.name)
            outer.add(tmp_path / f"{wnid}.tar", arcname=f"{wnid}.tar")
    folder = locate_train_folder(raw)
    assert folder == raw / "train" and not (raw / "train.partial").exists()
    table = scan_train_folder(folder, wnids)
    assert table["label"].tolist() == [0, 1, 1, 2, 2, 2]
    assert table["path"].iloc[0] == "n00000001/n00000001_0.JPEG"
    with pytest.raises(ValueError, match="missing 1"):
        scan_train_folder(folder, wnids + ["n00000004"])
    classes = {"dataset": "t", "source": "test",
               "classes": [{"name": w, "imagenet": [i]} for i, w in enumerate(wnids)]}
    dest = prepare_imagenet_train(raw, tmp_path / "data" / "imagenet_train", wnids=wnids, classes=classes)
    assert (dest / ".prepared").is_file()
    train_set = load_training_set(dest / "manifest.csv")
    assert len(train_set) == 6 and all(Path(p).is_file() for p in train_set.paths)
    assert train_set.members == [[0], [1], [2]]
    assert pd.read_csv(dest / "manifest.csv")["path"].iloc[0] == "images/n00000001/n00000001_0.JPEG"


def test_truncated_train_image_is_refused_and_nothing_is_prepared(tmp_path):
    wnids = ["n00000001", "n00000002"]
    train = tmp_path / "raw" / "train"
    for k, wnid in enumerate(wnids):
        _jpeg(train / wnid / f"{wnid}_0.JPEG", (0, 90 * k, 0))
    broken = train / "n00000002" / "n00000002_0.JPEG"
    broken.write_bytes(broken.read_bytes()[:-200])
    classes = {"dataset": "t", "source": "test",
               "classes": [{"name": w, "imagenet": [i]} for i, w in enumerate(wnids)]}
    dest = tmp_path / "data" / "imagenet_train"
    with pytest.raises(DatasetLayoutError, match="truncated or unreadable"):
        prepare_imagenet_train(tmp_path / "raw", dest, wnids=wnids, classes=classes)
    assert not dest.exists() and list((tmp_path / "data").iterdir()) == []


def test_demo_train_split_is_disjoint_from_the_test_region(tmp_path):
    test_box, train_box = holdout_boxes(400, 300, 0.3)
    assert test_box == (0, 0, 280, 300) and train_box == (280, 0, 400, 300)
    assert holdout_boxes(300, 400, 0.25) == ((0, 0, 300, 300), (0, 300, 300, 400))
    # A photo whose test region is black and whose training strip is white: every crop must be white.
    photo = np.zeros((300, 400, 3), dtype=np.uint8)
    photo[:, 280:] = 255
    classes = {"dataset": "d", "source": "s", "classes": [{"name": "a", "imagenet": [1, 2]}, {"name": "b", "imagenet": [3]}]}
    dest = build_demo_train_split(tmp_path / "demo_train", [(1, Image.fromarray(photo))], classes,
                                  crops_per_photo=4, short_side_range=(32, 40))
    frame = pd.read_csv(dest / "manifest.csv")
    assert len(frame) == 4 and set(frame["label"]) == {1}
    for path in frame["path"]:
        assert np.asarray(Image.open(dest / path)).min() >= 250


# ----------------------------------------------------------------------------- trainer

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
from oodbench.finetune import trainer as tr  # noqa: E402
from oodbench.preprocessing import resolve_preprocessing  # noqa: E402

MEMBERS = [[1], [2, 3], [7]]
CFG = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "interpolation": "bilinear"}


def make_train_set(root: Path, per_class: int = 6) -> Path:
    """Images whose colour gives their class away, so a few steps lower the loss."""
    rng = np.random.default_rng(0)
    rows = []
    base = [(220, 40, 40), (40, 220, 40), (40, 40, 220)]
    for label in range(len(MEMBERS)):
        for i in range(per_class):
            noise = rng.integers(-30, 30, size=(24, 28, 3))
            pixels = np.clip(np.array(base[label]) + noise, 0, 255).astype(np.uint8)
            path = f"images/{label}_{i}.png"
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / path)
            rows.append({"image_id": f"{label}_{i}", "path": path, "label": label})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    classes = {"dataset": "tiny", "source": "test", "classes": [{"name": f"c{k}", "imagenet": m} for k, m in enumerate(MEMBERS)]}
    (root / "classes.json").write_text(json.dumps(classes))
    return root / "manifest.csv"


def settings(steps=6, batch=8, micro=None, trainable="all", lr=None, state_every=100, hflip=False):
    schedule = sched.fixres_schedule(batch_size=batch, steps=steps, base_lr_per_256=lr)
    return tr.FineTuneSettings(resolution=32, schedule=schedule, micro_batch=micro, trainable=trainable,
                               seed=3, hflip=hflip, state_every=state_every, num_workers=0)


def tiny_timm():
    torch.manual_seed(0)
    return timm.create_model("test_resnet", pretrained=False, num_classes=1000)


def run(model, manifest, out, s):
    pre = resolve_preprocessing(CFG, 32)
    return tr.fine_tune(model, load_training_set(manifest), pre, s, out, {"base_model": "tiny", "base_weights_digest": "x"})


def test_class_set_loss_is_cross_entropy_for_singletons_and_marginal_for_sets():
    logits = torch.randn(4, 1000)
    labels = torch.tensor([0, 5, 999, 5])
    identity = tr.ClassSetLoss([[i] for i in range(1000)])
    assert identity.identity
    assert torch.allclose(identity(logits, labels), torch.nn.functional.cross_entropy(logits, labels))
    sets = tr.ClassSetLoss(MEMBERS)
    expected = -torch.log(torch.softmax(logits, 1)[torch.arange(4), [1, 2, 7, 2]]
                          + torch.tensor([0.0, 1.0, 0.0, 1.0]) * torch.softmax(logits, 1)[torch.arange(4), 3]).mean()
    assert torch.allclose(sets(logits, torch.tensor([0, 1, 2, 1])), expected, atol=1e-5)


def test_data_order_is_a_function_of_seed_and_step_only():
    s = settings(steps=5, batch=8)
    full = tr.step_micro_batches(s, 18, 3, [8])
    split = tr.step_micro_batches(s, 18, 3, [3, 3, 2])
    assert [x for b in split for x in b] == full[0]
    # Two consecutive epochs each visit every image exactly once.
    indices = np.concatenate([tr.sample_positions(1, 18, 0, 18), tr.sample_positions(1, 18, 18, 18)])
    assert sorted(indices[:18]) == list(range(18)) and sorted(indices[18:]) == list(range(18))
    assert not np.array_equal(indices[:18], indices[18:])


@pytest.mark.parametrize("family", ["test_resnet", "resnet50", "resnetv2_50x1_bit", "test_efficientnet"])
def test_classifier_bn_selects_classifier_and_final_norm(family):
    model = timm.create_model(family, pretrained=False, num_classes=1000)
    plan = tr.configure_trainable(model, "classifier_bn")
    expected = {
        "test_resnet": {"fc.weight", "fc.bias", "layer4.0.bn2.weight", "layer4.0.bn2.bias",
                        "layer4.0.downsample.2.weight", "layer4.0.downsample.2.bias"},
        "resnet50": {"fc.weight", "fc.bias", "layer4.2.bn3.weight", "layer4.2.bn3.bias"},
        "resnetv2_50x1_bit": {"head.fc.weight", "head.fc.bias", "norm.weight", "norm.bias"},
        "test_efficientnet": {"classifier.weight", "classifier.bias", "bn2.weight", "bn2.bias"},
    }[family]
    assert set(plan.parameter_names) == expected
    assert {n for n, p in model.named_parameters() if p.requires_grad} == expected


def test_classifier_bn_changes_only_the_intended_tensors_and_loss_falls(tmp_path):
    manifest = make_train_set(tmp_path / "data")
    model = tiny_timm()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = tmp_path / "ckpt" / "tiny+fixres32.pth"
    final = run(model, manifest, out, settings(steps=8, trainable="classifier_bn", lr=3.0))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    allowed_prefixes = ("fc.", "layer4.0.bn2.", "layer4.0.downsample.2.")
    assert changed and all(k.startswith(allowed_prefixes) for k in changed), changed
    assert {"fc.weight", "layer4.0.bn2.running_mean"} <= changed  # running stats adapt too
    losses = final["losses_every_step"]
    assert np.mean(losses[-3:]) < losses[0]
    # The checkpoint reloads through timm's file loader, provenance travels with it.
    reloaded = timm.create_model("test_resnet", pretrained=True, num_classes=1000,
                                 pretrained_cfg_overlay={"file": str(out), "num_classes": 1000})
    assert all(torch.equal(reloaded.state_dict()[k], after[k]) for k in after)
    provenance = tr.read_provenance(out)
    assert provenance["resolution"] == 32 and provenance["trainable"] == "classifier_bn"
    assert provenance["data_manifest_digest"] and provenance["versions"]["torch"]
    assert json.loads(out.with_suffix(".json").read_text())["steps"] == 8
    assert not out.with_suffix(".state.pt").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, out.with_suffix(".json").name])


def test_full_fine_tune_lowers_the_loss(tmp_path):
    manifest = make_train_set(tmp_path / "data")
    final = run(tiny_timm(), manifest, tmp_path / "all.pth", settings(steps=8, trainable="all", lr=1.0, hflip=True))
    losses = final["losses_every_step"]
    assert np.mean(losses[-3:]) < losses[0]
    assert final["trained_parameters"] == "all"


def _no_batch_stats_model():
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 1000),
    )


def test_accumulated_micro_batches_give_the_full_batch_update(tmp_path):
    manifest = make_train_set(tmp_path / "data")
    full, accumulated = _no_batch_stats_model(), _no_batch_stats_model()
    run(full, manifest, tmp_path / "full.pth", settings(steps=4, batch=8, lr=5.0))
    run(accumulated, manifest, tmp_path / "acc.pth", settings(steps=4, batch=8, micro=3, lr=5.0))
    for (name, a), b in zip(full.state_dict().items(), accumulated.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(full[4].weight, _no_batch_stats_model()[4].weight)


def test_saved_state_of_another_configuration_is_refused(tmp_path):
    manifest = make_train_set(tmp_path / "data")
    out = tmp_path / "x.pth"
    s = settings(steps=4)
    tr.save_state(tr.state_path_for(out), tiny_timm(), torch.optim.SGD(tiny_timm().parameters(), lr=0.1), 2, [1.0],
                  {"other": True}, torch.device("cpu"))
    with pytest.raises(RuntimeError, match="delete it to start over"):
        run(tiny_timm(), manifest, out, s)


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    import test_finetune as t
    from oodbench.finetune import trainer as tr
    from pathlib import Path
    if sys.argv[2] == "slow":
        step = tr._one_step
        def slow_step(*a, **k):
            time.sleep(0.15)
            return step(*a, **k)
        tr._one_step = slow_step
    t.run(t.tiny_timm(), Path(sys.argv[1]), Path(sys.argv[3]), t.settings(steps=12, trainable="all", lr=1.0, state_every=3))
    """
)


def _child(manifest, mode, out):
    code = CHILD.format(tests=str(Path(__file__).parent))
    return subprocess.Popen([sys.executable, "-c", code, str(manifest), mode, str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_killed_fine_tune_resumes_to_the_same_weights(tmp_path):
    manifest = make_train_set(tmp_path / "data")
    reference = tmp_path / "ref" / "m+fixres32.pth"
    assert _child(manifest, "fast", reference).wait(timeout=120) == 0

    out = tmp_path / "killed" / "m+fixres32.pth"
    state = tr.state_path_for(out)
    proc = _child(manifest, "slow", out)
    deadline = time.monotonic() + 90
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert state.exists() and not out.exists(), proc.stdout.read().decode()[-2000:]
    saved_step = torch.load(state, weights_only=True)["step"]
    assert 3 <= saved_step < 12

    resumed = _child(manifest, "fast", out)
    log = resumed.communicate(timeout=120)[0].decode()
    assert resumed.returncode == 0, log[-2000:]
    a = torch.load(reference, weights_only=True)
    b = torch.load(out, weights_only=True)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert json.loads(a["provenance"])["losses_every_step"] == json.loads(b["provenance"])["losses_every_step"]
    assert not state.exists()


# ----------------------------------------------------------------------------- figures 4, 10, 11

from oodbench.plots import fixres as fixres_plots  # noqa: E402


def _metrics_rows():
    rows = []

    def add(model, dataset, resolution, value, metric="top1"):
        rows.append({"model": model, "dataset": dataset, "resolution": str(resolution), "metric": metric,
                     "subset": "all", "value": value, "n": 10, "group": "g", "params": 1,
                     "pretraining_data": "ImageNet", "source": "pipeline"})

    for dataset in ("imagenet_a", "demo_clean"):
        add("m1", dataset, "default", 0.30)
        add("m1", dataset, 128, 0.20)
        add("m1", dataset, 320, 0.40)
        add("m1+fixres320", dataset, 320, 0.45)
        add("m1+fixres320", dataset, 224, 0.99)  # a FixRes model off its resolution does not count
        add("m2", dataset, "default", 0.50)
    add("m1", "demo_frames", 320, 0.7, metric="pm10")
    rows.append({**rows[0], "subset": "corruption=fog", "value": 1.0})
    return pd.DataFrame(rows)


def test_summary_picks_default_best_and_fixres_at_its_own_resolution():
    table = fixres_plots.summary_table(_metrics_rows()).set_index(["dataset", "metric", "model"])
    m1 = table.loc[("imagenet_a", "top1", "m1")]
    assert m1["default"] == 0.30 and m1["best"] == 0.40 and m1["best_r"] == 320
    assert m1["fixres"] == 0.45 and m1["fixres_r"] == 320
    m2 = table.loc[("imagenet_a", "top1", "m2")]
    assert m2["default"] == 0.50 and np.isnan(m2["best"]) and np.isnan(m2["fixres"])


@pytest.mark.parametrize("name", sorted(fixres_plots.FIGURES))
def test_figures_render_with_partial_data(tmp_path, name):
    # No ObjectNet rows at all: fig 4 must still draw its ObjectNet panel, with a note.
    pdf, png = tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"
    fixres_plots.render_figure(name, _metrics_rows(), pdf, png)
    assert pdf.stat().st_size > 1000 and png.stat().st_size > 1000
    # oodbench.atomic temporaries are hidden `.<name>.*` files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or ".tmp" in p.name]


def test_bar_figure_notes_missing_datasets():
    fig = fixres_plots.plot_fixres_bars(_metrics_rows(), ["imagenet_a", "objectnet"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("objectnet" in t and "no top1 results" in t for t in texts)
    empty = fixres_plots.plot_accuracy_vs_resolution(_metrics_rows().iloc[0:0])
    assert any("no" in t.get_text() for ax in empty.axes for t in ax.texts)
