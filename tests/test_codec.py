"""End-to-end codec behaviour: exact latent round trips, determinism, mismatch detection."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from gmcodec import container as ct
from gmcodec.codec import Codec, MismatchError, Stages, coder_settings, quality_to_q
from gmcodec.coder import CoderSettings, DecodeError
from gmcodec.imageio import pad, to_tensor


@pytest.mark.parametrize(
    ("w", "h", "quality"),
    [(64, 64, 50), (100, 77, 10), (130, 70, 90), (1, 1, 75), (200, 129, 0), (65, 200, 100)],
)
def test_decoded_latents_equal_encoded_latents(codec, crop, w, h, quality):
    img = crop(w, h)
    q = codec.model_q(quality)
    data = codec.encode(img, quality)
    f = ct.parse(data)
    stored = f.tiles[0]
    tile, encoded = codec._encode_tile(to_tensor(img), q, Stages(), seed=f.checksum_seed(stored))
    assert all(stored.group_matches(g, c) for g, c in enumerate(tile.group_checksums))
    assert stored.tile_checksum == tile.tile_checksum
    decoded = []
    original = codec._synthesize
    codec._synthesize = lambda groups, *a: (decoded.extend(groups), original(groups, *a))[1]
    try:
        out = codec.decode(data)
    finally:
        codec._synthesize = original
    assert out.size == (w, h)
    assert len(decoded) == len(encoded) == codec.model.entropy.layout.num_groups
    for a, b in zip(encoded, decoded, strict=True):
        np.testing.assert_array_equal(a, b)


def test_decoded_image_equals_encoder_reconstruction(codec, crop):
    img = crop(160, 96)
    data = codec.encode(img, 60)
    assert np.array_equal(np.asarray(codec.decode(data)), np.asarray(codec.reconstruct(img, 60)))


def test_decoding_twice_and_in_a_fresh_process_gives_identical_pixels(
    codec, crop, decode_elsewhere
):
    data = codec.encode(crop(96, 80), 70)
    first, second = np.asarray(codec.decode(data)), np.asarray(codec.decode(data))
    assert np.array_equal(first, second)
    assert np.array_equal(decode_elsewhere(data), first)


def test_encoding_is_deterministic(codec, crop):
    img = crop(120, 64)
    assert codec.encode(img, 33) == codec.encode(img, 33)


def test_higher_quality_gives_more_bits_and_less_error(codec, crop):
    img = crop(192, 128)
    ref = np.asarray(img, dtype=np.float64)
    sizes, errors = [], []
    for quality in (0, 30, 60, 90):
        data = codec.encode(img, quality)
        sizes.append(len(data))
        errors.append(((np.asarray(codec.decode(data), dtype=np.float64) - ref) ** 2).mean())
    assert sizes == sorted(sizes)
    assert errors == sorted(errors, reverse=True)


def test_cache_and_no_cache_paths_give_identical_parameters(codec, crop):
    """The context cache is an optimisation only: same integer coding parameters, same floats.

    Compared in the precision new files are coded with (float64, ``Codec.param_nets``): in
    float32, mu's rounding to the 1/64 grid flips about one element in a thousand.
    """
    from gmcodec.coder import quantize_params

    m = codec.model
    h_s, e = codec.param_nets(codec.settings)
    with torch.no_grad():
        y = m.g_a(pad(to_tensor(crop(256, 192)))).mul(m.gains(torch.tensor([4.0]))[0]).round()
        y = y.to(codec.settings.param_dtype)
        psi = h_s(m.h_a(y.float()).round().to(y.dtype))
        groups, grid, psi_t = e.layout.split(y), e.layout.grid(*y.shape[-2:]), e.psi_tokens(psi)
        cache = e.new_cache()
        for g in range(e.layout.num_groups):
            mu_c, sigma_c = e.step(g, groups[g - 1] if g else None, psi_t, grid, cache)
            mu_n, sigma_n = e.step_nocache(g, groups, psi_t, grid)
            torch.testing.assert_close(mu_c, mu_n, rtol=0, atol=1e-4)
            torch.testing.assert_close(sigma_c, sigma_n, rtol=1e-4, atol=1e-5)
            pc = quantize_params(mu_c, sigma_c, codec.settings)
            pn = quantize_params(mu_n, sigma_n, codec.settings)
            for a, b in zip(
                (pc.base, pc.mean_idx, pc.scale_idx),
                (pn.base, pn.mean_idx, pn.scale_idx),
                strict=True,
            ):
                assert (a != b).mean() < 1e-3  # float rounding may flip a rare boundary case
    with_cache = codec.time_entropy_model(crop(256, 192), 50, use_cache=True)
    without = codec.time_entropy_model(crop(256, 192), 50, use_cache=False)
    print(f"context cache speed-up on 256x192: {without / with_cache:.1f}x")


def test_teacher_forced_parameters_match_the_coding_loop(codec, crop):
    m = codec.model
    with torch.no_grad():
        y = m.g_a(pad(to_tensor(crop(128, 128)))).round()
        psi = m.h_s(m.h_a(y).round())
        mu, sigma = m.entropy(y, psi)
        e = m.entropy
        grid, psi_t, cache = e.layout.grid(*y.shape[-2:]), e.psi_tokens(psi), e.new_cache()
        groups = e.layout.split(y)
        mus = [
            e.step(g, groups[g - 1] if g else None, psi_t, grid, cache)[0]
            for g in range(e.layout.num_groups)
        ]
    torch.testing.assert_close(e.layout.merge(mus, *y.shape[-2:]), mu, rtol=0, atol=1e-4)


def test_perturbed_decoder_numerics_are_detected_not_decoded(crop):
    """A decoder whose entropy parameters differ must fail loudly, never return an image."""
    img = crop(128, 96)
    good = Codec.load(device="cpu")
    data = good.encode(img, 60)
    bad = Codec.load(device="cpu")
    with torch.no_grad():
        bad.model.entropy.out_proj[3].bias.add_(0.37)
    with pytest.raises(MismatchError, match="different numerics"):
        bad.decode(data)


def test_new_files_compute_entropy_parameters_in_float64_with_centred_bins(codec, crop):
    f = ct.parse(codec.encode(crop(64, 48), 50))
    assert (f.version, f.coder.coder_id, f.coder.mean_steps) == ((2, 0), 2, 64)
    s = coder_settings(f.coder)
    assert s.centred and s.unit == 64
    h_s, entropy = codec.param_nets(s)
    assert {p.dtype for p in [*h_s.parameters(), *entropy.parameters()]} == {torch.float64}


def _writer(codec: Codec, coder_id: int) -> Codec:
    """The same model writing files with an older coder id (integer bins, mean grid 1/8)."""
    settings = CoderSettings.written_by(coder_id)
    return Codec(codec.model, codec.model_id, codec.sha256, codec.device, settings)


def test_older_coder_ids_decode_with_their_own_precision_and_bins(crop):
    """Ids 0 (format 1.0, float32) and 1 (1.1, float64) keep decoding, with integer bins."""
    img = crop(128, 96)
    codec = Codec.load(device="cpu")
    data0, data1 = _writer(codec, 0).encode(img, 60), _writer(codec, 1).encode(img, 60)
    data2 = codec.encode(img, 60)
    assert [ct.parse(d).coder.coder_id for d in (data0, data1, data2)] == [0, 1, 2]
    pixels = [np.asarray(codec.decode(d)) for d in (data0, data1, data2)]
    assert np.array_equal(pixels[0], pixels[1])  # the same integer y_hat
    assert np.array_equal(pixels[1], np.asarray(_writer(codec, 1).reconstruct(img, 60)))
    assert np.array_equal(pixels[2], np.asarray(codec.reconstruct(img, 60)))
    assert not np.array_equal(pixels[1], pixels[2])  # centred bins give another y_hat
    with torch.no_grad():  # break only the float64 copy: ids 1 and 2 fail, id 0 does not
        codec.param_nets(CoderSettings())[1].out_proj[3].bias.add_(0.37)
    codec.decode(data0)
    for data in (data1, data2):
        with pytest.raises(MismatchError, match="different numerics"):
            codec.decode(data)


def test_bins_centred_on_the_mean_make_smaller_files_at_the_same_quality(codec, sample_image):
    """Coder id 2 against id 1, same weights, same quality (scripts/mean_shift.py: -2.3%)."""
    ref = np.asarray(sample_image, dtype=np.float64)
    old = _writer(codec, 1)
    for quality in (10, 50):
        integer, centred = old.encode(sample_image, quality), codec.encode(sample_image, quality)
        assert len(centred) < 0.99 * len(integer)
        errors = [
            ((np.asarray(codec.decode(d), dtype=np.float64) - ref) ** 2).mean()
            for d in (integer, centred)
        ]
        assert errors[1] < 1.05 * errors[0]


def test_file_from_another_model_is_refused(codec, crop):
    f = ct.parse(codec.encode(crop(64, 64), 50))
    other = ct.GmxFile(f.image, ct.ModelInfo("gm-other", "0" * 64), f.coder, f.tiles)
    with pytest.raises(DecodeError, match="gm-other"):
        codec.decode(ct.serialize(other))


def test_damaged_stream_with_valid_crc_fails_cleanly(codec, crop):
    f = ct.parse(codec.encode(crop(96, 64), 50))
    t = f.tiles[0]
    words = bytearray(t.words)
    words[len(words) // 2] ^= 0x5A
    damaged = ct.serialize(replace(f, tiles=(replace(t, words=bytes(words)),)))
    with pytest.raises(DecodeError):
        codec.decode(damaged)


def test_format_1_2_files_still_decode_to_the_same_pixels(codec, crop):
    img = crop(96, 64)
    new, old = codec.encode(img, 50), codec.encode(img, 50, version=ct.LEGACY_VERSION)
    assert (ct.parse(new).version, ct.parse(old).version) == ((2, 0), (1, 2))
    groups = codec.model.entropy.layout.num_groups
    assert len(old) - len(new) == 48 + 3 + 3 * groups
    assert np.array_equal(np.asarray(codec.decode(old)), np.asarray(codec.decode(new)))


def test_a_tampered_tile_checksum_is_detected(codec, crop):
    f = ct.parse(codec.encode(crop(64, 64), 50))
    t = f.tiles[0]
    bad = ct.serialize(replace(f, tiles=(replace(t, tile_checksum=t.tile_checksum ^ 1),)))
    with pytest.raises(MismatchError, match="the tile's decoded symbols"):
        codec.decode(bad)


def _rechunked(data: bytes, edit) -> bytes:
    """data with edit(chunks) applied to its (type, body) list, every CRC recomputed."""
    pos, chunks = 10, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "little")
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    framed = (
        len(body).to_bytes(4, "little")
        + kind
        + body
        + zlib.crc32(kind + body).to_bytes(4, "little")
        for kind, body in edit(chunks)
    )
    return data[:10] + b"".join(framed)


def test_header_edits_with_valid_crcs_fail_the_tile_checksum(codec, crop):
    """In 2.0 the tile checksum covers HEAD, the tile rectangle and ALPH, not iCCP/eXIf."""
    img = crop(64, 48).convert("RGBA")
    img.putalpha(77)
    data = codec.encode(img, 50)

    def quality(chunks):  # HEAD byte 13: the low byte of quality_centi (5000 -> 5001)
        return [(k, b[:13] + bytes([b[13] + 1]) + b[14:] if k == b"HEAD" else b) for k, b in chunks]

    def no_alpha(chunks):
        return [(k, b) for k, b in chunks if k != b"ALPH"]

    for edit in (quality, no_alpha):
        with pytest.raises(MismatchError, match="the tile's decoded symbols"):
            codec.decode(_rechunked(data, edit))
    plain = codec.encode(crop(64, 48), 50)  # optional chunks stay outside: adding one is fine
    extra = _rechunked(plain, lambda c: c[:1] + [(b"teXt", b"note")] + c[1:])
    assert np.array_equal(np.asarray(codec.decode(extra)), np.asarray(codec.decode(plain)))


def test_grayscale_stays_grayscale_and_alpha_is_kept_losslessly(codec, crop):
    gray = crop(80, 48).convert("L")
    assert codec.decode(codec.encode(gray, 80)).mode == "L"
    rgba = crop(80, 48).convert("RGBA")
    alpha = np.arange(80 * 48, dtype=np.uint8).reshape(48, 80)
    rgba.putalpha(__import__("PIL.Image", fromlist=["Image"]).fromarray(alpha))
    out = codec.decode(codec.encode(rgba, 80))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha)


def test_large_images_are_transformed_in_tiles_without_seams(codec, sample_image, monkeypatch):
    """A 2112-px-wide image is tiled; the result matches the untiled transform closely."""
    from PIL import Image

    import gmcodec.tiling as tiling

    wide = Image.new("RGB", (2112, 128))
    for i in range(3):
        wide.paste(sample_image.crop((0, 200, 704, 328)), (i * 704, 0))
    tiled = np.asarray(codec.reconstruct(wide, 50), dtype=np.int16)
    monkeypatch.setattr(tiling, "TILE_ABOVE", 10**6)
    whole = np.asarray(codec.reconstruct(wide, 50), dtype=np.int16)
    assert np.abs(tiled - whole).max() <= 2


def test_older_models_files_decode_and_a_retired_ones_name_the_restore(crop, tmp_path, monkeypatch):
    import shutil

    from gmcodec import zoo
    from gmcodec.config import ModelConfig
    from gmcodec.model import GMModel

    shutil.copytree(zoo.weights_dir(), tmp_path / "w")
    tiny = GMModel(ModelConfig(N=16, M=24, Nz=8, C=16, slices=(8, 16), d_model=16, heads=2))
    zoo.export(tiny, "gm-old", tmp_path / "w", make_default=False)
    monkeypatch.setenv("GMX_WEIGHTS", str(tmp_path / "w"))
    old = Codec.load("gm-old", device="cpu")
    data = old.encode(crop(96, 64), 50)
    current = Codec.load(device="cpu")
    assert current.model_id != "gm-old"
    assert np.array_equal(np.asarray(current.decode(data)), np.asarray(old.decode(data)))
    zoo.retire("gm-old", "abc123", tmp_path / "w")
    with pytest.raises(
        DecodeError, match="model 'gm-old'.* retired .*git show abc123:weights/gm-old"
    ):
        Codec.load(device="cpu").decode(data)


@pytest.mark.parametrize("quality", [25, 85])
def test_full_size_image_round_trips_with_matching_checksums(codec, sample_image, quality):
    """A whole 768x512 image: enough symbols that any encoder/decoder numeric drift shows."""
    data = codec.encode(sample_image, quality)
    assert np.array_equal(
        np.asarray(codec.decode(data)), np.asarray(codec.reconstruct(sample_image, quality))
    )


def test_quality_maps_onto_q_from_the_models_q_low_up_to_k():
    assert quality_to_q(0, 8) == -2.0 and quality_to_q(50, 8) == 3.0  # gm-small-v1's mapping
    assert quality_to_q(100, 8) == quality_to_q(100, 8, q_low=-3.0) == 8.0
    assert quality_to_q(0, 8, q_low=-3.0) == -3.0
    qs = [quality_to_q(v, 8, q_low=-2.7) for v in range(0, 101, 5)]
    assert qs == sorted(qs) and len(set(qs)) == len(qs)
    with pytest.raises(ValueError):
        quality_to_q(100.5, 8)


def test_q_high_moves_quality_100_and_keeps_quality_0():
    assert quality_to_q(100, 8, q_low=-2.7, q_high=8.25) == 8.25
    assert quality_to_q(0, 8, q_low=-2.7, q_high=8.25) == -2.7
    assert quality_to_q(50, 8, q_low=-2.0, q_high=None) == 3.0  # unset: K, as before q_high
    qs = [quality_to_q(v, 8, q_low=-2.7, q_high=8.25) for v in range(0, 101, 5)]
    assert qs == sorted(qs) and len(set(qs)) == len(qs)


def test_model_q_follows_the_configs_q_high():
    from gmcodec.config import ModelConfig
    from gmcodec.model import GMModel

    cfg = ModelConfig(N=16, M=24, Nz=8, C=16, slices=(8, 16), d_model=16, heads=2, q_low=-2.7)
    small = Codec(GMModel(replace(cfg, q_high=8.5)), "tiny", "0" * 64, torch.device("cpu"))
    assert small.model_q(100) == 8.5 and small.model_q(0) == -2.7
    assert ModelConfig.from_dict(json.loads(small.model.cfg.to_json())).q_high == 8.5
    assert ModelConfig.from_dict({"q_low": -2.7}).q_high is None  # configs written before it
    with pytest.raises(ValueError, match="q_high"):
        replace(cfg, q_high=9.5)
