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


def test_symbols_round_trip_exactly_with_categorical_and_gaussian_segments():
    s = CoderSettings()
    mu, sigma = _params(5000)
    y = torch.round(mu + sigma * torch.randn(5000, dtype=torch.float64)).long().numpy()
    y[0], y[1] = 10**6, -(10**6)  # out of range: clipped, and the clipped value is decoded
    p = quantize_params(mu, sigma, s)
    pmf = np.array([0.1, 0.6, 0.3])
    w = StreamWriter(s)
    w.categorical(np.array([0, 2, 1, 1]), pmf)
    y_hat = w.residuals(y, p)
    words = w.finish()
    r = StreamReader(words, s)
    assert r.categorical(4, pmf).tolist() == [0, 2, 1, 1]
    assert np.array_equal(r.residuals(p), y_hat)
    r.finish()
    assert np.array_equal(y_hat[2:], y[2:])
    assert abs(y_hat[0] - p.base[0]) == s.symbol_range


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
