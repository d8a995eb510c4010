"""The training pack: downscaled JPEGs, a fixed validation slice, and a byte budget."""

from __future__ import annotations

import pytest

from gmcodec.data import build_pack


@pytest.fixture
def corpus(tmp_path, crop):
    """Twelve 80x64 crops of the sample image, plus one too small to pack."""
    d = tmp_path / "corpus"
    d.mkdir()
    for i in range(12):
        crop(80, 64, x=40 * i, y=30 * (i % 5)).save(d / f"{i:02d}.png")
    crop(40, 40).save(d / "99-small.png")
    return d


def _names(folder):
    return sorted(p.name for p in folder.glob("*.jpg"))


def test_pack_holds_every_image_and_a_fixed_validation_slice(corpus, tmp_path):
    counts = build_pack(corpus, tmp_path / "pack", min_side=48, val_every=5)
    assert _names(tmp_path / "pack" / "val") == ["00000.jpg", "00005.jpg", "00010.jpg"]
    assert len(_names(tmp_path / "pack" / "train")) == counts["train"] == 9
    assert counts["skipped"] == 1  # the 40x40 image
    on_disk = sum(p.stat().st_size for p in (tmp_path / "pack").rglob("*.jpg"))
    assert counts["bytes"] == on_disk


def test_a_byte_budget_leaves_out_evenly_spaced_training_images_only(corpus, tmp_path):
    full = build_pack(corpus, tmp_path / "pack", min_side=48, val_every=5)
    all_train = _names(tmp_path / "pack" / "train")
    budget = full["bytes"] * 2 // 3
    fit = build_pack(corpus, tmp_path / "pack", min_side=48, val_every=5, max_bytes=budget)
    assert fit["bytes"] <= budget < full["bytes"]
    assert 0 < fit["train"] < full["train"] and fit["val"] == full["val"]
    train = _names(tmp_path / "pack" / "train")
    assert len(train) == fit["train"]  # the earlier, larger pack's files are gone
    gaps = {int(b[:5]) - int(a[:5]) for a, b in zip(train, train[1:], strict=False)}
    assert max(gaps) <= 3 and train[-1] > all_train[len(train) - 1]  # spread, not the first k
    assert fit["skipped"] == 1 + full["train"] - fit["train"]


def test_a_budget_below_the_validation_slice_is_refused(corpus, tmp_path):
    with pytest.raises(ValueError, match="validation"):
        build_pack(corpus, tmp_path / "pack", min_side=48, val_every=5, max_bytes=100)
