"""Weights registry: frozen model weights shipped in ``weights/``, named by stable string ids.

Each model is a compact fp16 state dict (``<id>.pt``), its config (``<id>.json``) and an entry
in ``weights/manifest.json`` with the file's sha256. Loading verifies the hash; nothing is ever
downloaded. A *retired* model keeps its manifest entry, marked with the git commit whose
``weights/`` still holds its files; restoring them from there makes it load again
(``docs/TRAINING.md``, "Which weights ship").
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .model import GMModel

MANIFEST = "manifest.json"


class WeightsError(RuntimeError):
    """Weights are missing, unknown or do not match the manifest."""


def weights_dir() -> Path:
    """$GMX_WEIGHTS, else the ``weights/`` folder of the source tree (editable install)."""
    env = os.environ.get("GMX_WEIGHTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "weights"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(root: Path | None = None) -> dict[str, Any]:
    path = (root or weights_dir()) / MANIFEST
    if not path.exists():
        raise WeightsError(f"no weights manifest at {path} (set GMX_WEIGHTS to the weights folder)")
    return json.loads(path.read_text())


def resolve(model_id: str | None = None, root: Path | None = None) -> tuple[str, dict[str, Any]]:
    """(model id, manifest entry); None means the manifest's default model."""
    manifest = read_manifest(root)
    mid = model_id or manifest["default"]
    if mid not in manifest["models"]:
        known = ", ".join(sorted(manifest["models"]))
        raise WeightsError(f"unknown model '{mid}' (this gmx has: {known})")
    return mid, manifest["models"][mid]


def load_state(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Config, float32 state dict and info of an exported weights file."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ModelConfig.from_dict(json.loads(blob["config"]))
    state = {k: v.float() for k, v in blob["state"].items()}
    return cfg, state, json.loads(blob.get("info", "{}"))


def model_from_file(path: str | Path) -> tuple[GMModel, dict[str, Any]]:
    """(model, info) of an exported weights file, not hash-checked (training, scripts)."""
    cfg, state, info = load_state(path)
    model = GMModel(cfg)
    model.load_state_dict(state)
    return model, info


def load_model(model_id: str | None = None, root: Path | None = None) -> tuple[GMModel, str, str]:
    """(model in eval mode on the CPU, model id, weights sha256), hash-checked."""
    root = root or weights_dir()
    mid, entry = resolve(model_id, root)
    path = root / entry["file"]
    if not path.exists():
        raise WeightsError(_missing(mid, entry, path))
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise WeightsError(
            f"weights file {path} is corrupt: sha256 {digest[:12]}… "
            f"does not match the manifest ({entry['sha256'][:12]}…)"
        )
    model, _ = model_from_file(path)
    return model.eval(), mid, digest


def _missing(model_id: str, entry: dict[str, Any], path: Path) -> str:
    if "retired" not in entry:
        return f"weights file {path} is missing"
    return (
        f"model '{model_id}' is retired from this gmx; restore its weights with "
        f"`git show {entry['retired']}:weights/{entry['file']} > {path}` (in the gmcodec repo)"
    )


def retire(model_id: str, commit: str, root: Path | None = None) -> None:
    """Delete a model's files from ``weights/``; its manifest entry stays, marked ``retired``.

    ``commit`` must be a git commit whose ``weights/`` holds the files (checked by the caller).
    """
    root = root or weights_dir()
    mid, entry = resolve(model_id, root)
    manifest = read_manifest(root)
    if manifest["default"] == mid:
        raise WeightsError(f"'{mid}' is the default model; make another the default first")
    for name in (entry["file"], entry["config"]):
        (root / name).unlink(missing_ok=True)
    manifest["models"][mid]["retired"] = commit
    _write_manifest(root, manifest)


def export(
    model: GMModel,
    model_id: str,
    root: Path | None = None,
    info: dict | None = None,
    make_default: bool = True,
) -> str:
    """Write ``<id>.pt`` (fp16) and ``<id>.json``, register them; returns the sha256."""
    root = root or weights_dir()
    root.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()
    }
    blob = {"config": model.cfg.to_json(), "state": state, "info": json.dumps(info or {})}
    path = root / f"{model_id}.pt"
    torch.save(blob, path)
    (root / f"{model_id}.json").write_text(model.cfg.to_json() + "\n")
    digest = sha256_file(path)
    _register(root, model_id, digest, model, info or {}, make_default)
    return digest


def _register(
    root: Path, model_id: str, digest: str, model: GMModel, info: dict, make_default: bool
) -> None:
    path = root / MANIFEST
    manifest = json.loads(path.read_text()) if path.exists() else {"models": {}}
    manifest["models"][model_id] = {
        "file": f"{model_id}.pt",
        "config": f"{model_id}.json",
        "sha256": digest,
        "dtype": "float16",
        "params": sum(p.numel() for p in model.parameters()),
        "info": info,
    }
    if make_default or "default" not in manifest:
        manifest["default"] = model_id
    _write_manifest(root, manifest)


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
