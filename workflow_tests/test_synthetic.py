"""Synthetic factor-of-variation set: geometry, grids, composition, analysis, rules (issue 5)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from oodbench.synthetic import analysis, compose, geometry, grid, pipeline, sources, workflow

REPO = Path(__file__).resolve().parents[1]
CANVAS = (96, 96)

PAPER_FACTORS = yaml.safe_load(
    """
size: {area_percent: {start: 1, stop: 100, step: 1}, angle: [0], position: centre, min_visible: 0.95, group_by: [area]}
location: {area_percent: [20], angle: [0], position: {divisions: 20, placement: centres}, min_visible: 0.0, group_by: [x, y], normalise_quantile: 0.95}
rotation: {area_percent: [20, 50, 80, 100], angle: {start: 1, stop: 341, step: 20}, position: centre, min_visible: 0.95, group_by: [angle]}
"""
)
TINY_FACTORS = yaml.safe_load(
    """
size: {area_percent: [10, 40, 90], angle: [0], position: centre, min_visible: 0.95, group_by: [area]}
location: {area_percent: [20], angle: [0], position: {divisions: 3, placement: centres}, min_visible: 0.0, group_by: [x, y], normalise_quantile: 0.95}
rotation: {area_percent: [20, 80], angle: [1, 91, 181], position: centre, min_visible: 0.95, group_by: [angle]}
"""
)


def ellipse_cutout(width: int, height: int, colour=(200, 40, 40)) -> Image.Image:
    ys, xs = np.mgrid[0:height, 0:width]
    inside = ((xs + 0.5 - width / 2) / (width / 2)) ** 2 + ((ys + 0.5 - height / 2) / (height / 2)) ** 2 <= 1
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = inside * 255
    return Image.fromarray(rgba, "RGBA")


def square_cutout(side: int) -> Image.Image:
    rgba = np.full((side, side, 4), 255, np.uint8)
    return Image.fromarray(rgba, "RGBA")


def weighted_centre(placed: geometry.PlacedObject) -> tuple[float, float]:
    alpha = np.asarray(placed.frame.getchannel("A"), float)
    cx = (alpha.sum(0) * (np.arange(alpha.shape[1]) + 0.5)).sum() / alpha.sum() + placed.origin[0]
    cy = (alpha.sum(1) * (np.arange(alpha.shape[0]) + 0.5)).sum() / alpha.sum() + placed.origin[1]
    return cx, cy


# ----------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("area", [0.01, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("angle", [0.0, 33.0, 90.0, 241.0])
def test_pasted_area_and_centre_match_request_within_a_pixel(area, angle):
    cutout = ellipse_cutout(140, 220)
    canvas = (512, 384)
    placed = geometry.transform_cutout(cutout, geometry.Placement(area, 0.4, 0.55, angle), canvas)
    requested_side = np.sqrt(area * canvas[0] * canvas[1])
    assert abs(np.sqrt(placed.total_mass) - requested_side) < 1.0
    cx, cy = weighted_centre(placed)  # a symmetric object: its centroid is its box centre
    if placed.visible_fraction == 1.0:
        assert abs(cx - 0.4 * canvas[0]) < 1.0 and abs(cy - 0.55 * canvas[1]) < 1.0


def test_rotation_preserves_area_and_turns_counter_clockwise():
    cutout = ellipse_cutout(60, 200)  # tall
    upright = geometry.transform_cutout(cutout, geometry.Placement(0.1, 0.5, 0.5, 0), (400, 400))
    for angle in (20.0, 45.0, 90.0, 170.0, 341.0):
        turned = geometry.transform_cutout(cutout, geometry.Placement(0.1, 0.5, 0.5, angle), (400, 400))
        assert turned.total_mass == pytest.approx(upright.total_mass, rel=0.005)
    # A tall bar turned 90 degrees is wide; PIL's rotate (counter-clockwise) agrees pixel-wise.
    quarter = geometry.transform_cutout(cutout, geometry.Placement(0.1, 0.5, 0.5, 90), (400, 400))
    assert quarter.frame.width > quarter.frame.height
    marked = np.zeros((200, 60, 4), np.uint8)
    marked[:20, :, :] = 255  # top band only
    band = geometry.transform_cutout(Image.fromarray(marked, "RGBA"), geometry.Placement(0.02, 0.5, 0.5, 90), (400, 400))
    cx, _ = weighted_centre(band)
    assert cx < 200  # the top of the object went left: counter-clockwise on screen


def test_visible_fraction_is_exact_on_constructed_cases():
    cutout = square_cutout(40)
    canvas = (100, 100)
    area = 1600 / 10000  # scale 1: the square is copied, not resampled
    centre = geometry.transform_cutout(cutout, geometry.Placement(area, 0.5, 0.5, 0), canvas)
    edge = geometry.transform_cutout(cutout, geometry.Placement(area, 0.0, 0.5, 0), canvas)
    corner = geometry.transform_cutout(cutout, geometry.Placement(area, 1.0, 1.0, 0), canvas)
    quarter_in = geometry.transform_cutout(cutout, geometry.Placement(area, 0.1, 0.5, 0), canvas)
    assert centre.visible_fraction == 1.0
    assert edge.visible_fraction == 0.5
    assert corner.visible_fraction == 0.25
    assert quarter_in.visible_fraction == pytest.approx(30 / 40, abs=1e-12)
    composed = np.asarray(geometry.composite(Image.new("RGB", canvas, (0, 0, 0)), centre))
    assert (composed[30:70, 30:70] == 255).all() and composed.sum() == 1600 * 3 * 255


def test_area_basis_bbox_uses_the_cutout_box():
    cutout = ellipse_cutout(100, 100)
    mask = geometry.scale_for_area(cutout, (200, 200), 0.25, "mask")
    bbox = geometry.scale_for_area(cutout, (200, 200), 0.25, "bbox")
    assert bbox == pytest.approx(1.0)
    assert mask == pytest.approx(np.sqrt(10000 / geometry.alpha_mass(cutout)))
    with pytest.raises(geometry.GeometryError, match="area_basis"):
        geometry.scale_for_area(cutout, (200, 200), 0.25, "hull")


def test_empty_or_non_rgba_cutouts_are_rejected():
    with pytest.raises(geometry.GeometryError, match="alpha channel is empty"):
        geometry.crop_to_alpha(Image.new("RGBA", (10, 10)), "x.png")
    with pytest.raises(geometry.GeometryError, match="RGBA"):
        geometry.crop_to_alpha(Image.new("RGB", (10, 10)), "x.png")


# ----------------------------------------------------------------------------- grids


def test_paper_grids_match_table_1_formulas():
    specs = grid.factor_specs({"factors": PAPER_FACTORS})
    assert specs["size"].grid_size == 100
    assert specs["location"].grid_size == 400
    assert specs["rotation"].grid_size == 72
    sizes = grid.factor_grid(specs["size"])
    assert sizes["area"].iloc[0] == 0.01 and sizes["area"].iloc[-1] == 1.0 and sizes["area"].iloc[6] == 0.07
    rotation = grid.factor_grid(specs["rotation"])
    assert sorted(rotation["angle"].unique()) == list(range(1, 342, 20))
    location = grid.factor_grid(specs["location"])
    assert location["x"].min() == 0.025 and location["x"].max() == 0.975 and location["y"].nunique() == 20
    assert grid.expected_count(specs["size"], 614, 2) == 122_800
    assert grid.expected_count(specs["location"], 614, 2) == 491_200
    assert grid.expected_count(specs["rotation"], 614, 2) == 88_416
    edges = grid.factor_spec("location", {**PAPER_FACTORS["location"], "position": {"divisions": 20, "placement": "edges"}})
    assert edges.grid_size == 441


def test_grid_config_errors_name_the_key():
    with pytest.raises(grid.GridConfigError, match="factors.size.*area_percent"):
        grid.factor_spec("size", {k: v for k, v in PAPER_FACTORS["size"].items() if k != "area_percent"})
    with pytest.raises(grid.GridConfigError, match="placement"):
        grid.expand_positions({"divisions": 4, "placement": "corners"}, "factors.location.position")


def test_background_sampling_is_seeded_distinct_and_stable():
    backgrounds = [f"bg{i}" for i in range(10)]
    first = grid.sample_backgrounds(["a", "b", "c"], backgrounds, 2, seed=0)
    again = grid.sample_backgrounds(["c", "a"], backgrounds, 2, seed=0)
    assert (first.groupby("object_id")["background_id"].nunique() == 2).all()
    merged = first.merge(again, on=["object_id", "background_slot"])
    assert (merged["background_id_x"] == merged["background_id_y"]).all()
    with pytest.raises(grid.GridConfigError, match="backgrounds_per_object"):
        grid.sample_backgrounds(["a"], backgrounds[:1], 2, seed=0)


# ----------------------------------------------------------------------------- sources + composition


@pytest.fixture
def tiny_sources(tmp_path):
    """Three RGBA cut-outs of two classes and three RGB backgrounds, prepared as tables."""
    cut_dir = tmp_path / "cutouts_in"
    for name, (w, h) in {"cat/a": (30, 50), "cat/b": (40, 40), "cup/c": (50, 24)}.items():
        (cut_dir / name).parent.mkdir(parents=True, exist_ok=True)
        ellipse_cutout(w, h).save(cut_dir / f"{name}.png")
    class_map = tmp_path / "class_map.csv"
    class_map.write_text("class_name,imagenet\ncat,281;282\ncup,968\n")
    sources.prepare_cutout_folder(cut_dir, class_map, tmp_path / "objects")
    bg_dir = tmp_path / "backgrounds"
    bg_dir.mkdir()
    for i, colour in enumerate([(10, 120, 10), (120, 120, 200), (200, 180, 140)]):
        Image.new("RGB", (120, 100), colour).save(bg_dir / f"bg{i}.png")
    sources.prepare_backgrounds(bg_dir, CANVAS, tmp_path / "backgrounds.csv")
    return tmp_path


def synthetic_config(**overrides) -> dict:
    config = {"canvas": list(CANVAS), "seed": 0, "backgrounds_per_object": 2, "image_format": "png", "factors": TINY_FACTORS}
    config.update(overrides)
    return config


def build(root: Path, factor: str, config: dict, shards: int, dest: Path) -> pd.DataFrame:
    dirs = []
    for k in range(shards):
        shard_dir = dest.parent / f"{dest.name}.shards/{k}"
        compose.compose_shard(factor, k, shards, root / "objects/objects.csv", root / "backgrounds.csv", config, shard_dir, progress=False)
        dirs.append(shard_dir)
    return compose.merge_shards(factor, dirs, compose.read_objects(root / "objects/objects.csv"), dest)


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".prepared"}


def test_counts_follow_the_grid_and_the_visible_filter(tiny_sources):
    config = synthetic_config()
    location = build(tiny_sources, "location", config, 1, tiny_sources / "out/synthetic_location")
    assert len(location) == 3 * 2 * 9  # min_visible 0: the full cross product
    assert set(location.columns) >= {"factor", "object_id", "background_id", "area", "x", "y", "angle", "visible_fraction"}
    rotation = build(tiny_sources, "rotation", config, 1, tiny_sources / "out/synthetic_rotation")
    assert len(rotation) <= 3 * 2 * 6 and (rotation["visible_fraction"] >= 0.95).all()
    no_filter = synthetic_config(factors={**TINY_FACTORS, "rotation": {**TINY_FACTORS["rotation"], "min_visible": 0.0}})
    unfiltered = build(tiny_sources, "rotation", no_filter, 1, tiny_sources / "out2/synthetic_rotation")
    assert len(unfiltered) == 36 and (unfiltered["visible_fraction"] < 0.95).any()
    classes = json.loads((tiny_sources / "out/synthetic_location/classes.json").read_text())
    assert classes["classes"] == [{"name": "cat", "imagenet": [281, 282]}, {"name": "cup", "imagenet": [968]}]
    assert (tiny_sources / "out/synthetic_location/.prepared").is_file()


def test_same_config_gives_the_same_bytes_whatever_the_sharding(tiny_sources):
    config = synthetic_config(image_format="jpg")
    one = build(tiny_sources, "size", config, 1, tiny_sources / "a/synthetic_size")
    two = build(tiny_sources, "size", config, 2, tiny_sources / "b/synthetic_size")
    again = build(tiny_sources, "size", config, 2, tiny_sources / "c/synthetic_size")
    pd.testing.assert_frame_equal(one, two)
    assert tree_digest(tiny_sources / "a/synthetic_size") == tree_digest(tiny_sources / "b/synthetic_size")
    assert tree_digest(tiny_sources / "b/synthetic_size") == tree_digest(tiny_sources / "c/synthetic_size")


def test_invalid_backgrounds_and_cutouts_are_errors_naming_the_file(tmp_path):
    folder = tmp_path / "bgs"
    folder.mkdir()
    Image.new("RGB", (200, 200)).save(folder / "good.jpg")
    Image.new("L", (200, 200)).save(folder / "grey.png")
    with pytest.raises(sources.SourceError, match="grey.png.*RGB"):
        sources.prepare_backgrounds(folder, (128, 128), tmp_path / "b.csv")
    (folder / "grey.png").unlink()
    Image.new("RGB", (100, 300)).save(folder / "small.png")
    with pytest.raises(sources.SourceError, match="small.png.*smaller than the canvas"):
        sources.prepare_backgrounds(folder, (128, 128), tmp_path / "b.csv")
    (folder / "small.png").unlink()
    (folder / "notes.txt").write_text("x")
    with pytest.raises(sources.SourceError, match="notes.txt"):
        sources.prepare_backgrounds(folder, (128, 128), tmp_path / "b.csv")
    cuts = tmp_path / "cuts" / "dog"
    cuts.mkdir(parents=True)
    ellipse_cutout(10, 10).save(cuts / "x.png")
    class_map = tmp_path / "map.csv"
    class_map.write_text("class_name,imagenet\ncat,281\n")
    with pytest.raises(sources.SourceError, match="dog.*not in the class map"):
        sources.prepare_cutout_folder(tmp_path / "cuts", class_map, tmp_path / "objects")


def test_openimages_selection_drops_flagged_boxes_and_matches_masks(tmp_path):
    (tmp_path / "classes.csv").write_text("/m/01,Koala\n/m/02,Teapot\n/m/03,Person\n")
    seg = pd.DataFrame(
        {
            "MaskPath": ["aa_m01_1.png", "ab_m01_2.png", "ac_m02_3.png", "ad_m03_4.png", "ae_m02_5.png"],
            "ImageID": ["aa", "ab", "ac", "ad", "ae"],
            "LabelName": ["/m/01", "/m/01", "/m/02", "/m/03", "/m/02"],
            "BoxID": ["1", "2", "3", "4", "5"],
            "BoxXMin": [0.1] * 5, "BoxXMax": [0.5] * 5, "BoxYMin": [0.2] * 5, "BoxYMax": [0.6] * 5,
            "PredictedIoU": [0.9, 0.8, 0.7, 0.9, 0.95], "Clicks": [""] * 5,
        }
    )
    seg.to_csv(tmp_path / "seg.csv", index=False)
    boxes = pd.DataFrame(
        {
            "ImageID": ["aa", "ab", "ac", "ad", "ae"], "Source": ["x"] * 5,
            "LabelName": ["/m/01", "/m/01", "/m/02", "/m/03", "/m/02"], "Confidence": [1] * 5,
            "XMin": [0.1, 0.1, 0.1, 0.1, 0.3], "XMax": [0.5] * 5, "YMin": [0.2] * 5, "YMax": [0.6] * 5,
            "IsOccluded": [0, 1, 0, 0, 0], "IsTruncated": [0] * 5, "IsGroupOf": [0] * 5, "IsDepiction": [0] * 5,
        }
    )
    boxes.to_csv(tmp_path / "boxes.csv", index=False)
    selection = sources.select_openimages_objects(
        tmp_path / "classes.csv", {"validation": tmp_path / "seg.csv"}, {"validation": tmp_path / "boxes.csv"},
        {"koala": [105], "teapot": [849]},
    )
    # ab: occluded; ad: class not mapped; ae: its box is 0.2 away (no matching box, flags unknown).
    assert selection["object_id"].tolist() == ["aa_m01_1", "ac_m02_3"]
    assert selection["class_name"].tolist() == ["koala", "teapot"]


def test_openimages_cutout_uses_the_mask_as_alpha():
    image = Image.new("RGB", (100, 50), (10, 20, 30))
    mask = np.zeros((25, 50), np.uint8)
    mask[5:10, 10:30] = 255  # half-resolution mask: resized to the image
    cutout = sources.make_cutout(image, Image.fromarray(mask, "L"), "test")
    assert cutout.mode == "RGBA" and cutout.size == (40, 10)
    with pytest.raises(sources.SourceError, match="aspect"):
        sources.make_cutout(image, Image.new("L", (50, 50)), "test")


# ----------------------------------------------------------------------------- analysis


def test_normalisation_and_differences_on_known_inputs():
    accuracy = pd.DataFrame({"model": ["m"] * 4 + ["n"] * 4, "angle": [1, 21, 41, 61] * 2, "accuracy": [0.2, 0.4, 0.8, 0.5, 0.5, 0.5, 1.0, 0.25]})
    best = analysis.normalise_by_quantile(accuracy, 1.0)
    np.testing.assert_allclose(best, [0.25, 0.5, 1.0, 0.625, 0.5, 0.5, 1.0, 0.25])
    p95 = analysis.normalise_by_quantile(accuracy, 0.95)
    reference = np.quantile([0.2, 0.4, 0.8, 0.5], 0.95)  # 0.755
    assert p95.iloc[2] == pytest.approx(0.8 / reference) and p95.iloc[2] > 1.0
    table = pd.DataFrame({"panel": [0] * 8, "row": [0] * 4 + [1] * 4, "angle": [1, 21, 41, 61] * 2, "normalised": best})
    difference = analysis.differences_to_first_row(table, ["angle"])
    assert difference.iloc[:4].isna().all()
    np.testing.assert_allclose(difference.iloc[4:], [0.25, 0.0, 0.0, -0.375])


def test_accuracy_by_group_filters_on_visible_fraction():
    manifest = pd.DataFrame({"x": [0.1, 0.1, 0.9, 0.9], "y": [0.5] * 4, "visible_fraction": [1.0, 0.4, 0.8, 0.76]})
    correct = {"m": np.array([True, False, True, False])}
    all_images = analysis.accuracy_by_group(manifest, correct, ["x", "y"])
    assert all_images["accuracy"].tolist() == [0.5, 0.5] and all_images["n"].tolist() == [2, 2]
    filtered = analysis.accuracy_by_group(manifest, correct, ["x", "y"], min_visible=0.75)
    assert filtered["accuracy"].tolist() == [1.0, 0.5] and filtered["n"].tolist() == [1, 2]
    assert analysis.parse_variant("location_75") == ("location", 0.75)
    assert analysis.parse_variant("size") == ("size", None)


def write_fixture_logits(path: Path, manifest_path: Path, logits: np.ndarray, image_ids) -> None:
    """Test double of the predict stage: logits in the contract-2 layout."""
    from oodbench.datasets.manifest import manifest_digest

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("logits", data=logits.astype(np.float16))
        h5.create_dataset("image_id", data=np.asarray(list(image_ids), dtype=object), dtype=h5py.string_dtype())
        h5.attrs["manifest_digest"] = manifest_digest(manifest_path)


def test_image_correctness_uses_max_over_member_logits(tiny_sources):
    rows = build(tiny_sources, "location", synthetic_config(), 1, tiny_sources / "out/synthetic_location")
    manifest_path = tiny_sources / "out/synthetic_location/manifest.csv"
    logits = np.zeros((len(rows), 1000), np.float32)
    # Every image: 282 (cat member) high; cup images get 968 even higher on their first half.
    logits[:, 282] = 5.0
    cups = np.flatnonzero(rows["label"].to_numpy() == 1)
    logits[cups[: len(cups) // 2], 968] = 9.0
    write_fixture_logits(tiny_sources / "m.h5", manifest_path, logits, rows["image_id"])
    inputs = analysis.read_manifest_truth(manifest_path)
    correct = analysis.image_correctness(inputs, tiny_sources / "m.h5")
    expected = rows["label"].to_numpy() == 0
    expected[cups[: len(cups) // 2]] = True
    np.testing.assert_array_equal(correct, expected)
    with h5py.File(tiny_sources / "m.h5", "a") as h5:
        h5.attrs["manifest_digest"] = "0" * 64
    with pytest.raises(ValueError, match="different manifest"):
        analysis.image_correctness(inputs, tiny_sources / "m.h5")


# ----------------------------------------------------------------------------- rule params


def synthetic_blocks() -> list[dict]:
    """The paper's (OpenImages objects, a backgrounds folder) and the demo's synthetic block."""
    return [yaml.safe_load((REPO / name).read_text())["synthetic"] for name in ("config.yaml", "demo/config.yaml")]


def source_params(synthetic: dict) -> dict:
    """What the select/objects/backgrounds/compose/merge rules get as params."""
    jobs = [("objects", None), ("backgrounds", None)]
    jobs += [(job, factor) for job in ("compose", "merge") for factor in synthetic["factors"]]
    if synthetic["objects"]["source"] == "openimages":
        jobs.append(("openimages_select", None))
    return {(job, factor): workflow.rule_settings(synthetic, job, factor) for job, factor in jobs}


@pytest.mark.parametrize("synthetic", synthetic_blocks(), ids=["paper", "demo"])
def test_rule_params_hold_only_what_each_job_reads(synthetic):
    """Params are a rerun trigger: figure options, model-grid labels and analysis settings must
    not rerun the set's composition (whose manifest would rerun every predict job on it)."""
    edited = yaml.safe_load(yaml.safe_dump(synthetic))
    edited["figures"] = {"main_rows": 1, "samples_per_factor": 2}
    for panel in edited["model_grid"]:
        panel["title"] += " (edited)"
        for row in panel["rows"]:
            row["label"] += " (edited)"
    edited["factors"]["location"]["normalise_quantile"] = 0.9
    assert source_params(edited) == source_params(synthetic)
    assert workflow.rule_settings(edited, "figure") != workflow.rule_settings(synthetic, "figure")
    assert workflow.rule_settings(edited, "analysis", "location_75") != workflow.rule_settings(synthetic, "analysis", "location_75")

    reseeded = {**synthetic, "seed": synthetic.get("seed", 0) + 1}
    before, after = source_params(synthetic), source_params(reseeded)
    changed = {key for key in before if before[key] != after[key]}
    seeded_backgrounds = {("backgrounds", None)} if synthetic["backgrounds"]["source"] == "demo" else set()
    assert changed == {("compose", factor) for factor in synthetic["factors"]} | seeded_backgrounds
    regridded = yaml.safe_load(yaml.safe_dump(synthetic))
    regridded["factors"]["size"]["min_visible"] = 0.5
    assert workflow.rule_settings(regridded, "compose", "size") != workflow.rule_settings(synthetic, "compose", "size")
    assert workflow.rule_settings(regridded, "compose", "rotation") == workflow.rule_settings(synthetic, "compose", "rotation")


def test_narrowed_settings_suffice_for_the_jobs(tiny_sources):
    """Each job runs on its rule's narrowed settings (folder objects and backgrounds here; the
    demo sources run in test_rules_build_the_demo_set_and_the_figures)."""
    synthetic = synthetic_config(
        objects={"source": "folder", "folder": {"path": str(tiny_sources / "cutouts_in"), "class_map": str(tiny_sources / "class_map.csv")}},
        backgrounds={"source": "folder", "folder": str(tiny_sources / "backgrounds")},
        model_grid=[{"title": "x", "rows": [{"model": "m"}]}],
    )
    root = tiny_sources / "narrow"
    objects = pipeline.prepare_objects(workflow.rule_settings(synthetic, "objects"), root / "objects")
    assert len(objects) == 3
    pipeline.prepare_backgrounds(workflow.rule_settings(synthetic, "backgrounds"), root / "backgrounds.csv")
    shard = root / "synthetic_size.shards/0"
    compose.compose_shard(
        "size", 0, 1, root / "objects/objects.csv", root / "backgrounds.csv",
        workflow.rule_settings(synthetic, "compose", "size"), shard, progress=False,
    )
    rows = pipeline.merge(workflow.rule_settings(synthetic, "merge", "size"), "size", [str(shard)], str(root / "objects/objects.csv"), str(root / "synthetic_size"))
    full = build(tiny_sources, "size", synthetic, 1, tiny_sources / "full/synthetic_size")
    pd.testing.assert_frame_equal(rows, full)


# ----------------------------------------------------------------------------- rules


FAKE_LOGITS_SCRIPT = textwrap.dedent(
    """
    import sys
    import h5py, numpy as np, pandas as pd
    from oodbench.datasets.manifest import manifest_digest

    manifest, out, model = sys.argv[1], sys.argv[2], sys.argv[3]
    rows = pd.read_csv(manifest)
    skill = {"m0": 0.4, "m1": 0.7, "m2": 0.9}[model]
    rng = np.random.default_rng(len(rows))
    logits = rng.normal(size=(len(rows), 1000)).astype(np.float32)
    hit = rng.random(len(rows)) < skill * rows["visible_fraction"].to_numpy()
    logits[hit, 281] = 50.0
    with h5py.File(out, "w") as h5:
        h5.create_dataset("logits", data=logits.astype(np.float16))
        h5.attrs["manifest_digest"] = manifest_digest(manifest)
    """
)


@pytest.mark.workflow
def test_rules_build_the_demo_set_and_the_figures(tmp_path):
    """rules/synthetic.smk end to end on the demo sources, with a fixture stand-in for predict."""
    work = tmp_path / "wf"
    (work / "rules").mkdir(parents=True)
    for folder in ("scripts", "envs", "report"):
        shutil.copytree(REPO / folder, work / folder)
    shutil.copy(REPO / "rules/synthetic.smk", work / "rules/synthetic.smk")
    (work / "fake_logits.py").write_text(FAKE_LOGITS_SCRIPT)
    config = {
        "synthetic": {
            "canvas": [64, 64], "seed": 0, "backgrounds_per_object": 2, "image_format": "jpg", "jpeg_quality": 90,
            "shards": 1, "resolution": "default", "objects": {"source": "demo"}, "backgrounds": {"source": "demo"},
            "factors": {
                "size": {"area_percent": [20, 60], "angle": [0], "position": "centre", "min_visible": 0.95, "group_by": ["area"]},
                "location": {"area_percent": [20], "angle": [0], "position": {"divisions": 2, "placement": "centres"}, "min_visible": 0.0, "group_by": ["x", "y"], "normalise_quantile": 0.95},
                "rotation": {"area_percent": [20], "angle": [1, 181], "position": "centre", "min_visible": 0.95, "group_by": ["angle"]},
            },
            "model_grid": [{"title": "Fixture", "rows": [{"label": "small", "model": "m0"}, {"label": "large", "model": "m2"}]}],
            "figures": {"main_rows": 2, "samples_per_factor": 3},
        }
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    (work / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\n'
        + SYNTHETIC_HELPERS
        + '\n\ninclude: "rules/synthetic.smk"\n\n\n'
        "rule fake_predict:\n"
        '    input:\n        "data/synthetic_{factor}/manifest.csv",\n'
        '    output:\n        "results/predictions/{model}/synthetic_{factor}/default.h5",\n'
        f'    shell:\n        "{sys.executable} fake_logits.py {{input}} {{output}} {{wildcards.model}}"\n\n\n'
        "rule all_synthetic:\n"
        "    input:\n"
        + "".join(f'        "results/figures/{name}.png",\n' for name in FIGURES_RUN)
    )
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "all_synthetic", "--quiet"],
        cwd=work, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for name in FIGURES_RUN:
        assert (work / f"results/figures/{name}.pdf").stat().st_size > 0
    table = pd.read_csv(work / "results/analysis/synthetic_location_75.csv")
    assert set(table["model"]) == {"m0", "m2"} and table["difference"].notna().sum() == 4
    manifest = pd.read_csv(work / "data/synthetic_location/manifest.csv")
    assert len(manifest) == 6 * 2 * 4
    assert not list(work.glob("data/synthetic_*.shards/*"))  # temp shards removed after the merge
    # The remaining figure rules resolve against what exists (dry-run: only them and their analyses).
    others = [f"results/figures/{name}.pdf" for name in FIGURE_NAMES if name not in FIGURES_RUN]
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", *others], cwd=work, capture_output=True, text=True, timeout=120
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "synthetic_compose" not in dry.stdout and "synthetic_fig13_size" in dry.stdout
    # Figure options and model-grid labels are params of the analyses and figures only: the
    # prepared sets (and so the predictions on them) stay up to date.
    config["synthetic"]["figures"]["main_rows"] = 1
    config["synthetic"]["model_grid"][0]["rows"][1]["label"] = "largest"
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    rerun = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "all_synthetic"], cwd=work, capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "synthetic_analysis" in rerun.stdout and "synthetic_fig5_location" in rerun.stdout, rerun.stdout
    for rule in ("synthetic_objects", "synthetic_backgrounds", "synthetic_compose", "synthetic_merge", "fake_predict"):
        assert rule not in rerun.stdout, rerun.stdout


FIGURES_RUN = ["fig5_location", "fig6_rotation_size", "fig12_samples", "fig17_location_75"]
FIGURE_NAMES = [
    "fig5_location", "fig6_rotation_size", "fig12_samples", "fig13_size",
    "fig14_rotation", "fig15_location", "fig16_location_50", "fig17_location_75",
]
# The synthetic section of rules/common.smk (the whole file needs the full config), with a
# stand-in for the one helper it calls from elsewhere in that file.
_COMMON = (REPO / "rules/common.smk").read_text()
SYNTHETIC_HELPERS = (
    "from pathlib import Path\n\n"
    "from oodbench.synthetic import workflow as synthetic_workflow\n\n"
    'SYNTHETIC = config.get("synthetic", {})\n\n\n'
    "def stop_unless_dry_run(key, warning, error):\n    raise ValueError(error)\n\n\n"
    + _COMMON[_COMMON.index("# --- synthetic factor-of-variation sets") : _COMMON.index("\ndef remove_caches")]
)
