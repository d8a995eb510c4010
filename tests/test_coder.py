"""The constriction wrapper: exact round trips, integer parameters, clean failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmcodec.coder import CoderSettings, DecodeError, StreamReader, StreamWriter, quantize_params


def _params(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, generator=g, dtype=torch.float64) * 20
    sigma = torch.exp(torch.rand(n, generator=g, dtype=torch.float64) * 7 - 3)
    return mu, sigma


INTEGER_BINS = CoderSettings.written_by(1)  # format 1.1's writer
CENTRED_BINS = CoderSettings()  # the default since format 1.2


@pytest.mark.parametrize("s", [INTEGER_BINS, CENTRED_BINS], ids=["integer", "centred"])
def test_symbols_round_trip_exactly_with_categorical_and_gaussian_segments(s):
    mu, sigma = _params(5000)
    y = (mu + sigma * torch.randn(5000, dtype=torch.float64)).numpy()
    y[0], y[1] = 1e6, -1e6  # out of range: clipped, and the clipped value is decoded
    p = quantize_params(mu, sigma, s)
    pmf = np.array([0.1, 0.6, 0.3])
    w = StreamWriter(s)
    w.categorical(np.array([0, 2, 1, 1]), pmf)
    decoded = w.residuals(y, p)
    words = w.finish()
    r = StreamReader(words, s)
    assert r.categorical(4, pmf).tolist() == [0, 2, 1, 1]
    assert np.array_equal(r.residuals(p), decoded)
    r.finish()
    y_hat = decoded / s.unit
    assert np.abs(y_hat[2:] - y[2:]).max() <= 0.5  # rounding error only
    assert np.all(np.abs(decoded[:2] - p.base[:2]) == s.unit * s.symbol_range)


def test_integer_bins_round_y_and_centred_bins_round_around_the_mean():
    mu = torch.tensor([0.3, 0.3, -2.45, 5.0], dtype=torch.float64)
    sigma = torch.ones(4, dtype=torch.float64)
    y = np.array([0.75, 0.85, -2.0, 5.49])
    integer = StreamWriter(INTEGER_BINS).residuals(y, quantize_params(mu, sigma, INTEGER_BINS))
    assert integer.tolist() == [1, 1, -2, 5]  # round(y)
    centred = StreamWriter(CENTRED_BINS).residuals(y, quantize_params(mu, sigma, CENTRED_BINS))
    # mu on the 1/64 grid (0.296875, 0.296875, -2.453125, 5.0), plus round(y - mu)
    assert (centred / 64).tolist() == [0.296875, 1.296875, -2.453125, 5.0]


def test_parameters_are_integers_in_range():
    s = CoderSettings()
    p = quantize_params(*_params(1000), s)
    assert p.mean_idx.min() >= -s.mean_steps // 2 and p.mean_idx.max() < s.mean_steps // 2
    assert p.scale_idx.min() >= 0 and p.scale_idx.max() < s.num_scales
    table = s.scale_table()
    assert table[0] == pytest.approx(s.scale_min) and table[-1] == pytest.approx(s.scale_max)


def test_trailing_data_is_detected():
    s = CoderSettings()
    p = quantize_params(*_params(100), s)
    w = StreamWriter(s)
    w.residuals(np.zeros(100, dtype=np.int64), p)
    r = StreamReader(w.finish(), s)
    r.residuals(quantize_params(*_params(50), s))
    with pytest.raises(DecodeError, match="trailing"):
        r.finish()


@pytest.mark.parametrize("words", [b"", b"\x00\x00\x00\x00", b"\xff" * 64, b"abc"])
def test_garbage_streams_raise_decode_error_or_decode_but_never_panic(words):
    """ANS decodes any bits to some symbols; the codec's checksums catch those (test_codec)."""
    s = CoderSettings()
    p = quantize_params(*_params(300), s)
    try:
        r = StreamReader(words, s)
        values = r.residuals(p)
        r.finish()
    except DecodeError:
        return
    assert values.shape == (300,)


def test_settings_are_validated():
    with pytest.raises(ValueError):
        CoderSettings(scale_min=2.0, scale_max=1.0)
    with pytest.raises(ValueError):
        CoderSettings(num_scales=1)
