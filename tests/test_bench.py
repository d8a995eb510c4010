"""End-to-end tests of gmcodec.bench on tiny generated images with Pillow codecs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import publish_bench as publish
from gmcodec import bench

QUALITIES = (30, 80)
POINT_KEYS = {"quality", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s"}


class FakeGmxAdapter:
    """Test double for the gmx codec: Pillow JPEG bytes plus canned stage and cache timings."""

    name = "gmx"
    default_qualities = QUALITIES
    device = "cpu"

    def encode(self, img: Image.Image, quality: float) -> bytes:
        return bench.JPEG.encode(img, quality)

    def decode(self, data: bytes) -> Image.Image:
        return bench.JPEG.decode(data)

    def encode_timed(self, img: Image.Image, quality: float) -> tuple[bytes, dict[str, float]]:
        return self.encode(img, quality), {"transforms": 0.01, "mixer": 0.02, "coder": 0.03}

    def decode_timed(self, data: bytes) -> tuple[Image.Image, dict[str, float]]:
        return self.decode(data), {"transforms": 0.04, "hyperprior": 0.005}

    def time_entropy_model(self, img: Image.Image, quality: float, use_cache: bool) -> float:
        return 0.002 if use_cache else 0.006

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory_bytes(self) -> int | None:
        return None

    def settings(self) -> dict[str, Any]:
        return {"fake": True}


def _write_noise_png(path: Path, width: int, height: int, seed: int) -> None:
    """A smooth random RGB image: low-resolution noise upsampled bicubically."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC).save(path)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    _write_noise_png(folder / "a.png", 64, 48, seed=1)
    _write_noise_png(folder / "b.png", 80, 64, seed=2)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def anchors_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "anchors"
    folder.mkdir()
    curve = {"bpp": [0.5, 1.0, 2.0, 4.0], "psnr-rgb": [25.0, 30.0, 35.0, 40.0]}
    (folder / "line.json").write_text(json.dumps({"name": "Line", "results": curve}))
    (folder / "rateonly.json").write_text(json.dumps({"results": {"bpp": [1, 2]}}))
    return folder


def _codecs() -> list[Any]:
    names = ["jpeg", "webp"] + (["avif"] if bench.avif_available() else [])
    return [FakeGmxAdapter(), *names]


def test_bench_writes_schema_report_and_plot(
    image_dir: Path, anchors_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    codecs = _codecs()
    qualities = {name: QUALITIES for name in codecs if isinstance(name, str)}
    results = bench.run_bench(
        image_dir, codecs, qualities, "cpu", anchors_dir, out, progress=False, command="t"
    )
    loaded = json.loads((out / "results.json").read_text())
    assert loaded["command"] == "t" and loaded["device"] == "cpu"
    assert [i["name"] for i in loaded["images"]] == ["a.png", "b.png"]
    assert {"cpu", "cores", "torch", "gpu"} <= set(loaded["machine"])
    for name, points in loaded["codecs"].items():
        assert [p["quality"] for p in points] == list(QUALITIES), name
        assert all(POINT_KEYS <= set(p) and p["ms_ssim"] is None for p in points)
        assert all(p["bpp"] > 0 and p["psnr"] > 20 for p in points)
    assert set(loaded["bd_rate_vs"]) == set(results["codecs"]) - {"gmx"} | {"anchor:line"}
    assert set(loaded["bd_rate_msssim_vs"]) == set(loaded["bd_rate_vs"])
    assert (out / "REPORT.md").read_text().startswith("# gmx benchmark")
    with Image.open(out / "rd.png") as png:
        assert png.size == (900, 600)


def test_fake_gmx_identical_to_jpeg_has_zero_bd_rate(image_dir: Path) -> None:
    results = bench.run_bench(
        image_dir, [FakeGmxAdapter(), "jpeg"], {"jpeg": QUALITIES}, progress=False
    )
    assert results["bd_rate_vs"]["jpeg"] == pytest.approx(0.0, abs=1e-9)
    assert results["bd_rate_msssim_vs"]["jpeg"] is None


def test_profiled_codec_gets_stages_and_context_cache(image_dir: Path) -> None:
    results = bench.run_bench(image_dir, [FakeGmxAdapter()], progress=False)
    cache = results["context_cache"]
    assert (cache["with_s"], cache["without_s"]) == (0.002, 0.006)
    assert cache["speedup"] == pytest.approx(3.0)
    assert results["stages"]["encode"] == pytest.approx(
        {"transforms": 0.01, "mixer": 0.02, "coder": 0.03}
    )
    assert set(results["stages"]["decode"]) == {"transforms", "hyperprior"}


def test_bench_without_gmx_has_no_bd_rates_or_profile(image_dir: Path, tmp_path: Path) -> None:
    results = bench.run_bench(
        image_dir, ["jpeg"], {"jpeg": QUALITIES}, out_dir=tmp_path, progress=False
    )
    assert results["bd_rate_vs"] == {} and results["stages"] is None
    assert "No BD-rates" in (tmp_path / "REPORT.md").read_text()


def test_progress_bar_goes_to_stderr(image_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench.run_bench(image_dir, ["jpeg"], {"jpeg": (50,)}, progress=True)
    captured = capsys.readouterr()
    assert "2/2" in captured.err and captured.out == ""


@pytest.mark.parametrize("adapter", [bench.JPEG, bench.WEBP, bench.AVIF], ids=lambda a: a.name)
def test_pillow_adapters_round_trip_rgb(adapter: bench.PillowAdapter) -> None:
    if adapter.name == "avif" and not bench.avif_available():
        pytest.skip("Pillow without AVIF")
    img = Image.new("RGB", (24, 16), (200, 40, 90))
    out = adapter.decode(adapter.encode(img, 90))
    assert out.mode == "RGB" and out.size == img.size


def test_qualities_for_a_codec_not_benchmarked_are_rejected(image_dir: Path) -> None:
    with pytest.raises(ValueError, match="not benchmarked"):
        bench.run_bench(image_dir, ["jpeg"], {"jepg": (50,)}, progress=False)


def test_unknown_codec_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown codec"):
        bench.make_adapter("jxl")


def test_no_png_images_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        bench.run_bench(tmp_path, ["jpeg"], progress=False)


class FakeCodec:
    """Test double for gmcodec.codec.Codec: JPEG bytes, canned stage timings, CPU device."""

    model_id = "fake-model"

    def __init__(self) -> None:
        import torch

        self.device = torch.device("cpu")
        self.efforts: set[int] = set()

    def encode(self, img: Image.Image, quality: float, effort: int = 1) -> bytes:
        self.efforts.add(effort)
        return bench.JPEG.encode(img, quality)

    def decode(self, data: bytes) -> Image.Image:
        return bench.JPEG.decode(data)

    def encode_timed(
        self, img: Image.Image, quality: float, effort: int = 1
    ) -> tuple[bytes, dict[str, float]]:
        return self.encode(img, quality, effort), {"transforms": 0.5}

    def decode_timed(self, data: bytes) -> tuple[Image.Image, dict[str, float]]:
        return self.decode(data), {"transforms": 0.25}

    def time_entropy_model(self, img: Image.Image, quality: float, use_cache: bool = True) -> float:
        return 1.0 if use_cache else 4.0


def test_gmx_adapter_delegates_to_the_codec(image_dir: Path) -> None:
    codec = FakeCodec()
    adapter = bench.GmxAdapter(codec, qualities=QUALITIES, effort=3)
    assert isinstance(adapter, bench.ProfiledAdapter)
    assert adapter.settings() == {
        "model_id": "fake-model",
        "device": "cpu",
        "effort": 3,
        "format": "2.0",
    }
    assert adapter.peak_memory_bytes() is None
    results = bench.run_bench(image_dir, [adapter], progress=False)
    assert results["device"] == "cpu"
    assert results["context_cache"]["speedup"] == pytest.approx(4.0)
    assert results["stages"]["decode"] == {"transforms": 0.25}
    assert codec.efforts == {3}  # every encode, timed or not, at the adapter's effort


def test_publish_bench_replaces_only_the_report_section(image_dir: Path, tmp_path: Path) -> None:
    out, docs = tmp_path / "report", tmp_path / "docs"
    docs.mkdir()
    bench.run_bench(
        image_dir,
        [FakeGmxAdapter(), "jpeg"],
        {"jpeg": QUALITIES},
        "cpu",
        None,
        out,
        progress=False,
        command="t",
    )
    old = "# Benchmarks\n\nhand-written summary\n" + publish.HEADING + "\nold report\n"
    (docs / "BENCHMARKS.md").write_text(old)
    publish.publish(out, docs)
    page = (docs / "BENCHMARKS.md").read_text()
    report = (out / "REPORT.md").read_text()
    assert page.startswith("# Benchmarks\n\nhand-written summary\n" + publish.HEADING + "\n\n")
    assert "old report" not in page and "# gmx benchmark" not in page
    assert page.endswith(report[report.index("\n") + 1 :].lstrip("\n"))
    assert (docs / "bench-results.json").read_bytes() == (out / "results.json").read_bytes()
    assert (docs / "rd.png").read_bytes() == (out / "rd.png").read_bytes()
    (docs / "BENCHMARKS.md").write_text("no heading\n")
    with pytest.raises(SystemExit, match="exactly one"):
        publish.publish(out, docs)
