"""The gmx command line: round trips, refusals, exit codes, pipes, rate control, help texts.

Encoding is the slow part (about a second per small image on a CPU), so one module-scoped
encode is shared and the error paths are the ones that fail before the model loads.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import gmcodec
from gmcodec import cli, fileio, ratecontrol
from gmcodec import container as ct

ROOT = Path(__file__).resolve().parent.parent
QUALITY = "50"
ENCODE_LINE = re.compile(r"^(\S+): [\d,]+ bytes, \d+\.\d{3} bpp, \d+\.\d\d s")


def synthetic_image(width: int, height: int, seed: int) -> Image.Image:
    """Smooth colour blobs plus a little noise: a stand-in for a photo crop."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    smooth = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    pixels = np.asarray(smooth, dtype=np.float32) + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def gmx(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli.cli, [str(a) for a in args], input=input, prog_name="gmx")


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("gmx: error:")]


def assert_one_error(result: Result, *fragments: str) -> None:
    """Exit 1 with exactly one 'gmx: error:' line containing fragments, and no traceback."""
    assert result.exit_code == cli.EXIT_FAILURE, result.output
    (line,) = error_lines(result)
    for fragment in fragments:
        assert fragment in line
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    synthetic_image(64, 48, seed=0).save(folder / "small.png")
    synthetic_image(48, 40, seed=1).save(folder / "other.png")
    (folder / "notes.png").write_text("not an image\n")
    return folder


@pytest.fixture(scope="module")
def encoded(work: Path) -> tuple[Path, Result]:
    """small.png encoded once at quality 50 (the shared, slow step)."""
    result = gmx("encode", work / "small.png", "-q", QUALITY, "--device", "cpu")
    return work / "small.gmx", result


@pytest.fixture(scope="module")
def decoded(work: Path, encoded: tuple[Path, Result]) -> tuple[Path, Result]:
    gmx_path = encoded[0]
    result = gmx("decode", gmx_path, work / "decoded.png", "--device", "cpu")
    return work / "decoded.png", result


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- round trip


def test_encode_writes_gmx_beside_input_with_one_summary_line(encoded):
    path, result = encoded
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # data never goes to stdout unless asked
    (line,) = result.stderr.splitlines()
    assert ENCODE_LINE.match(line) and line.startswith(f"{path}: ")
    assert ct.parse(path.read_bytes()).coder.quality == float(QUALITY)


def test_decode_restores_size_and_prints_dimensions(decoded, work):
    path, result = decoded
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"{re.escape(str(path))}: 64x48, \d+\.\d\d s", result.stderr.strip())
    with Image.open(path) as img:
        assert img.size == (64, 48) and img.mode == "RGB"
        error = np.abs(np.asarray(img, np.int16) - np.asarray(Image.open(work / "small.png")))
    assert error.mean() < 20


def test_force_overwrites_and_encoding_is_deterministic(encoded, work):
    target = work / "again.gmx"
    target.write_bytes(b"old")
    refused = gmx("encode", work / "small.png", target, "-q", QUALITY)
    assert_one_error(refused, "exists", "--force")
    assert target.read_bytes() == b"old"
    result = gmx("encode", work / "small.png", target, "-q", QUALITY, "--force", "--quiet")
    assert result.exit_code == 0 and result.stderr == ""
    assert target.read_bytes() == encoded[0].read_bytes()


def test_decode_from_stdin_to_stdout_writes_png(decoded, encoded):
    result = gmx("decode", "-", "-", input=encoded[0].read_bytes())
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"\x89PNG")
    with Image.open(decoded[0]) as expected:
        assert result.stdout_bytes == fileio.encode_image(expected, "PNG")


def test_encode_pipe_in_a_real_process_matches_the_file(encoded, work):
    proc = subprocess.run(
        [sys.executable, "-m", "gmcodec.cli", "encode", "-", "-", "-q", QUALITY, "--quiet"],
        input=(work / "small.png").read_bytes(),
        capture_output=True,
        check=False,
        cwd=work,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == encoded[0].read_bytes()
    assert proc.stderr == b""


# --------------------------------------------------------------------------- info


def test_info_prints_summary_then_aligned_keys(encoded):
    result = gmx("info", encoded[0])
    assert result.exit_code == 0
    first, *rows = result.stdout.splitlines()
    assert first.startswith(f"{encoded[0]}: GMX 2.0, 64x48 RGB, ") and "quality 50" in first
    colons = {len(row) - len(row.split(": ", 1)[1].lstrip()) for row in rows}
    assert len(colons) == 1  # values start in one column


def test_info_json_follows_describe_schema(encoded):
    result = gmx("info", "--json", encoded[0])
    d = json.loads(result.stdout)
    assert d["format"] == "GMX" and (d["width"], d["height"]) == (64, 48)
    assert d["bytes"] == encoded[0].stat().st_size
    assert d["bpp"] == pytest.approx(8 * d["bytes"] / (64 * 48))
    assert {"model_id", "weights_sha256", "quality", "coder", "tile_streams"} <= d.keys()
    both = json.loads(gmx("info", "--json", encoded[0], encoded[0]).stdout)
    assert isinstance(both, list) and len(both) == 2


def test_info_version_and_help_do_not_import_torch(encoded):
    code = (
        "import sys\n"
        "from gmcodec.cli import cli\n"
        f"for args in (['info', '-v', {str(encoded[0])!r}], ['--version'], ['--help']):\n"
        "    try:\n"
        "        cli.main(args, prog_name='gmx')\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "Entropy coder:" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "TORCH False"


def test_info_reports_damaged_file_and_goes_on(encoded, work):
    damaged = work / "damaged.gmx"
    damaged.write_bytes(encoded[0].read_bytes()[:-20])
    result = gmx("info", damaged, encoded[0])
    assert_one_error(result, "damaged.gmx", "truncated")
    assert "64x48" in result.stdout


def test_bits_map_without_analysis_module_fails_clearly(encoded, work, monkeypatch):
    monkeypatch.setitem(sys.modules, "gmcodec.analysis", None)  # import raises
    monkeypatch.delattr(gmcodec, "analysis", raising=False)
    result = gmx("info", encoded[0], "--bits-map", work / "bits.png")
    assert_one_error(result, "gmcodec.analysis")
    assert not (work / "bits.png").exists()


def test_bits_map_hook_calls_analysis(encoded, work, monkeypatch):
    fake = types.ModuleType("gmcodec.analysis")
    row = types.SimpleNamespace(as_dict=lambda: {"group": 0, "bits": 800, "bpp": 0.26})

    def write_bits_map(src, png, device="auto"):  # like analysis: writes, returns its analysis
        Image.new("L", (4, 3)).save(png)
        return types.SimpleNamespace(groups=[row])

    fake.write_bits_map = write_bits_map
    monkeypatch.setitem(sys.modules, "gmcodec.analysis", fake)
    monkeypatch.setattr(gmcodec, "analysis", fake, raising=False)
    png = work / "bits.png"
    result = gmx("info", "-v", encoded[0], "--bits-map", png)
    assert result.exit_code == 0, result.output
    assert "Group 0: bits 800, bpp 0.26" in result.stdout
    assert Image.open(png).size == (4, 3) and not leftovers(work)


# --------------------------------------------------------------------------- refusals, exit codes


def test_same_input_and_output_is_refused(work, encoded):
    image = work / "small.png"
    before = image.read_bytes()
    assert_one_error(gmx("encode", image, "-o", image, "--force"), "same file")
    assert_one_error(gmx("decode", image, image, "--force"), "same file")
    assert image.read_bytes() == before
    assert gmx("decode", encoded[0], "-o", encoded[0], "--force").exit_code == cli.EXIT_USAGE


def test_missing_input_exits_1_with_one_line(work):
    result = gmx("encode", work / "missing.png", work / "missing.gmx")
    assert_one_error(result, "missing.png", "No such file")
    assert not (work / "missing.gmx").exists()


def test_non_image_input_exits_1_with_one_line(work):
    result = gmx("encode", work / "notes.png", work / "notes.gmx")
    assert_one_error(result, "notes.png", "not an image")
    assert not (work / "notes.gmx").exists()


def test_truncated_gmx_exits_1_and_leaves_no_output(encoded, work):
    cut = work / "cut.gmx"
    cut.write_bytes(encoded[0].read_bytes()[:100])
    result = gmx("decode", cut)
    assert_one_error(result, "cut.gmx", "truncated")
    assert not (work / "cut.png").exists() and not leftovers(work)


def test_batch_goes_on_after_a_bad_file_and_exits_1(work):
    out = work / "batch"
    result = gmx("encode", work / "small.png", work / "notes.png", work / "other.png", "-o", out)
    assert_one_error(result, "notes.png")
    assert sorted(p.name for p in out.iterdir()) == ["other.gmx", "small.gmx"]
    summaries = [line for line in result.stderr.splitlines() if ENCODE_LINE.match(line)]
    assert len(summaries) == 2


def test_size_limits_are_checked_before_the_model_loads(work):
    result = gmx("encode", work / "small.png", work / "big.gmx", "--max-pixels", "1000")
    assert_one_error(result, "exceeds the size limits", "--max-pixels")


def test_usage_errors_exit_2(work):
    assert gmx("encode", work / "small.png", "-q", "101").exit_code == cli.EXIT_USAGE
    assert gmx("encode", work / "small.png", "-q", "50", "--bpp", "1").exit_code == 2
    assert gmx("encode", work / "small.png", "--bpp", "1", "--size", "1k").exit_code == 2
    assert gmx("encode", work / "small.png", "--size", "lots").exit_code == 2
    assert gmx("encode", "-").exit_code == 2  # stdin needs an output
    assert gmx("decode", work / "small.gmx", work / "x.bmp").exit_code == 2
    assert gmx("encode", work / "small.png", "-v", "--quiet").exit_code == 2
    assert gmx("train", "--no-such-option").exit_code == 2  # argparse, through the passthrough


def test_unavailable_device_stops_the_batch_with_one_line(work):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = gmx(
        "encode", work / "small.png", work / "other.png", "-o", work / "gpu", "--device", "cuda"
    )
    assert_one_error(result, "cannot load the model", "CUDA")
    assert not any((work / "gpu").iterdir())


def test_unexpected_errors_are_one_line_too(work, monkeypatch):
    def broken(*args, **kwargs):
        raise TypeError("something\nunexpected")

    monkeypatch.setattr(cli, "open_image", broken)
    result = gmx("encode", work / "small.png", work / "broken.gmx")
    assert_one_error(result, "something unexpected", "TypeError", "internal error")


def test_interrupt_removes_the_temp_file_and_exits_130(work, monkeypatch):
    target = work / "interrupted.gmx"
    with pytest.raises(KeyboardInterrupt), fileio.atomic_output(target) as fh:
        fh.write(b"partial")
        raise KeyboardInterrupt
    assert not target.exists() and not leftovers(work)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "open_image", interrupt)
    result = gmx("encode", work / "small.png", target)
    assert result.exit_code == cli.EXIT_INTERRUPTED and not target.exists()


# --------------------------------------------------------------------------- rate control


def test_bpp_target_is_met_within_tolerance(work):
    out = work / "rate.gmx"
    result = gmx("encode", work / "small.png", out, "--bpp", "2.5")
    assert result.exit_code == 0, result.output
    bpp = 8 * out.stat().st_size / (64 * 48)
    assert (1 - ratecontrol.RATE_TOLERANCE) * 2.5 <= bpp <= 2.5
    assert "(target 2.5 bpp," in result.stderr


def test_size_target_is_met_within_tolerance(work):
    out = work / "sized.gmx"
    result = gmx("encode", work / "small.png", out, "--size", "1k")
    assert result.exit_code == 0, result.output
    assert (1 - ratecontrol.RATE_TOLERANCE) * 1000 <= out.stat().st_size <= 1000


def fake_encoder(calls: list[float], size=lambda q: 200 * 2 ** (q / 20)):
    """Sizes that grow with quality (by default exponentially, like a real codec's)."""

    def encode(quality: float) -> bytes:
        calls.append(quality)
        return bytes(int(size(quality)))

    return encode


@pytest.mark.parametrize(
    "size",
    [lambda q: 200 * 2 ** (q / 20), lambda q: 900 + q * q, lambda q: 500 + 4000 * (q / 100) ** 0.5],
    ids=["exponential", "quadratic", "square-root"],
)
def test_fit_rate_stops_inside_the_window_never_above(size):
    calls: list[float] = []
    fit = ratecontrol.fit_rate(fake_encoder(calls, size), 1000)
    assert fit.within and 980 <= len(fit.data) <= 1000
    assert fit.encodes == len(calls) <= ratecontrol.RATE_MAX_STEPS
    assert len(fit.data) == int(size(fit.quality))


def test_fit_rate_reports_unreachable_targets():
    low = ratecontrol.fit_rate(fake_encoder([]), 100)
    assert (low.quality, low.within) == (0, False) and "lowest rate" in low.note
    high = ratecontrol.fit_rate(fake_encoder([]), 10**6)
    assert (high.quality, high.within) == (100, False) and "highest rate" in high.note


@pytest.mark.parametrize(
    ("text", "size"),
    [("1234", 1234), ("50k", 50_000), ("1.5M", 1_500_000), ("64Ki", 65_536), ("2 MB", 2 * 10**6)],
)
def test_size_option_parses_units(text, size):
    assert cli.SizeType().convert(text, None, None) == size


# --------------------------------------------------------------------------- paths, metadata


def test_plan_jobs_pairs_inputs_with_outputs(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()

    def plan(*args: str, output: str | None = None) -> list[tuple[str, str]]:
        jobs = cli.plan_jobs(args, output, ".gmx", cli._looks_like_image)
        return [(j.src, j.dst) for j in jobs]

    assert plan("a.png") == [("a.png", "a.gmx")]
    assert plan("a.png", "b.gmx") == [("a.png", "b.gmx")]
    assert plan("a.png", "b.png") == [("a.png", "a.gmx"), ("b.png", "b.gmx")]
    assert plan("a.png", str(folder)) == [("a.png", str(folder / "a.gmx"))]
    assert plan("a.png", "b.jpg", str(folder)) == [
        ("a.png", str(folder / "a.gmx")),
        ("b.jpg", str(folder / "b.gmx")),
    ]
    assert plan("-", output="-") == [("-", "-")]
    jobs = cli.plan_jobs(["x/a.png", "y/a.png"], str(folder), ".gmx", cli._looks_like_image)
    assert not jobs[0].problem and "also the output of x/a.png" in jobs[1].problem


def test_strip_drops_icc_and_exif(tmp_path):
    path = tmp_path / "meta.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    Image.new("RGB", (8, 4)).save(path, icc_profile=b"fake icc", exif=exif)
    kept = fileio.open_image(path.read_bytes(), ct.Limits())
    assert kept.info.get("icc_profile") and kept.info.get("exif")
    stripped = fileio.open_image(path.read_bytes(), ct.Limits(), strip=True)
    assert "icc_profile" not in stripped.info and "exif" not in stripped.info
    assert stripped.size == (4, 8)


def test_gmx_given_to_encode_is_named(encoded, work):
    assert_one_error(gmx("encode", encoded[0], work / "twice.gmx"), "gmx decode")


def test_bench_writes_a_report_and_says_where(work, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "one.png").write_bytes((work / "other.png").read_bytes())
    report = tmp_path / "report"
    result = gmx("bench", images, "-o", report, "--codecs", "jpeg", "--qualities", "jpeg=50")
    assert result.exit_code == 0, result.output
    assert str(report / "REPORT.md") in result.stdout
    assert json.loads((report / "results.json").read_text())["codecs"].keys() == {"jpeg"}
    bad = gmx("bench", images, "--qualities", "jpeg=fast")
    assert bad.exit_code == cli.EXIT_USAGE and "must be numbers" in bad.stderr


# --------------------------------------------------------------------------- help, version, docs


def test_version_names_every_component():
    result = gmx("--version")
    assert result.exit_code == 0
    text = result.stdout
    assert f"gmcodec) {gmcodec.__version__}" in text
    assert f"container format {ct.FORMAT_MAJOR}.{ct.FORMAT_MINOR}" in text
    assert re.search(r"^torch \S+", text, re.M) and re.search(r"^constriction \S+", text, re.M)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("encode", ["[default: 75; 0<=x<=100]", "[default: auto]", "--bpp", "--size", "--force"]),
        ("decode", ["[default: auto]", "--max-pixels", "[default: 268435456; x>=1]"]),
        ("info", ["--json", "--bits-map", "[default: auto]"]),
        ("bench", ["[default: bench-report]", "[default: gmx,jpeg,webp,avif]", "x>=1"]),
        ("train", ["usage:"]),
    ],
)
def test_help_shows_ranges_and_defaults(command, expected):
    result = gmx(command, "--help")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())
    for text in expected:
        assert text in flat


def test_mirrored_constants_match_the_library():
    from gmcodec import bench, codec

    assert (cli.QUALITY_MIN, cli.QUALITY_MAX) == (codec.QUALITY_MIN, codec.QUALITY_MAX)
    assert cli.DEFAULT_QUALITY == codec.DEFAULT_QUALITY
    assert set(cli.BENCH_CODECS) == set(bench.DEFAULT_CODECS)


def test_cli_docs_are_up_to_date():
    import gen_cli_docs

    assert (ROOT / "docs" / "CLI.md").read_text() == gen_cli_docs.render(), (
        "docs/CLI.md is stale: run python scripts/gen_cli_docs.py"
    )


def test_main_is_the_console_script():
    proc = subprocess.run(
        [sys.executable, "-m", "gmcodec.cli", "encode", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: gmx encode")
