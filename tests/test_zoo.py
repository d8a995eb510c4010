"""Shipped weights: manifest, hashes, export/load round trip."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from gmcodec import zoo
from gmcodec.config import ModelConfig
from gmcodec.model import GMModel


def test_every_shipped_model_matches_its_manifest_sha256_and_config():
    root = zoo.weights_dir()
    manifest = zoo.read_manifest(root)
    assert manifest["default"] in manifest["models"]
    for mid, entry in manifest["models"].items():
        if "retired" in entry:
            assert not (root / entry["file"]).exists() and mid != manifest["default"], mid
            continue
        assert zoo.sha256_file(root / entry["file"]) == entry["sha256"], mid
        cfg = ModelConfig.from_dict(json.loads((root / entry["config"]).read_text()))
        model, loaded_id, digest = zoo.load_model(mid)
        assert (loaded_id, digest, model.cfg) == (mid, entry["sha256"], cfg)
        assert all(p.dtype == torch.float32 for p in model.parameters())


def test_corrupt_weights_are_refused(tmp_path):
    root = zoo.weights_dir()
    shutil.copytree(root, tmp_path / "w")
    mid, entry = zoo.resolve(None, tmp_path / "w")
    path = tmp_path / "w" / entry["file"]
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.WeightsError, match="corrupt"):
        zoo.load_model(mid, tmp_path / "w")


def test_unknown_model_is_refused():
    with pytest.raises(zoo.WeightsError, match="unknown model"):
        zoo.resolve("no-such-model")


def test_export_then_load_gives_the_same_model_in_fp16_precision(tmp_path):
    cfg = ModelConfig(N=16, M=24, Nz=8, C=16, slices=(8, 16), d_model=16, heads=2)
    model = GMModel(cfg)
    digest = zoo.export(model, "tiny", tmp_path, {"note": "test"})
    loaded, mid, got = zoo.load_model("tiny", tmp_path)
    assert (mid, got) == ("tiny", digest)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a.half().float(), b, msg=name)


def test_a_retired_model_names_its_restore_command_and_loads_once_restored(tmp_path):
    model = GMModel(ModelConfig(N=16, M=24, Nz=8, C=16, slices=(8, 16), d_model=16, heads=2))
    digest = zoo.export(model, "old", tmp_path)
    zoo.export(model, "new", tmp_path)
    kept = (tmp_path / "old.pt").read_bytes()
    zoo.retire("old", "abc123", tmp_path)
    assert not (tmp_path / "old.pt").exists() and not (tmp_path / "old.json").exists()
    with pytest.raises(zoo.WeightsError, match="retired") as err:
        zoo.load_model("old", tmp_path)
    assert f"git show abc123:weights/old.pt > {tmp_path / 'old.pt'}" in str(err.value)
    (tmp_path / "old.pt").write_bytes(kept)
    assert zoo.load_model("old", tmp_path)[2] == digest
    with pytest.raises(zoo.WeightsError, match="default"):
        zoo.retire("new", "abc123", tmp_path)
