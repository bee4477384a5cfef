"""Which logits files a config asks for (oodbench.plan.prediction_grid)."""

from oodbench import plan


def config_with_a_synthetic_set():
    return {
        "resolutions": ["default", "128"],
        "models": {
            "a": {"timm": "a"},
            "b": {"timm": "b"},
            "a+fixres128": {"checkpoint": "results/checkpoints/a+fixres128.pth", "fixres_of": "a", "resolutions": [128]},
        },
        "datasets": {
            "clean": {"kind": "demo_clean"},
            "synthetic_size": {"kind": "synthetic", "resolutions": ["default"], "models": ["a"]},
        },
    }


def test_a_dataset_list_narrows_models_and_resolutions_exactly():
    grid = plan.prediction_grid(config_with_a_synthetic_set())
    assert sorted(g for g in grid if g[1] == "synthetic_size") == [("a", "synthetic_size", "default")]
    assert sorted(g for g in grid if g[1] == "clean") == [
        ("a", "clean", "128"), ("a", "clean", "default"), ("a+fixres128", "clean", "128"),
        ("b", "clean", "128"), ("b", "clean", "default"),
    ]


def test_a_fixres_model_runs_on_a_narrowed_set_only_when_named_at_its_resolution():
    config = config_with_a_synthetic_set()
    config["datasets"]["synthetic_size"].update(models=["a", "a+fixres128"], resolutions=["default", 128])
    grid = [g for g in plan.prediction_grid(config) if g[1] == "synthetic_size"]
    assert sorted(grid) == [("a", "synthetic_size", "128"), ("a", "synthetic_size", "default"), ("a+fixres128", "synthetic_size", "128")]
