"""Entropy coding with constriction's ANS coder (the only module that imports constriction).

y residuals are coded with a zero-range-limited quantized Gaussian whose parameters are taken
from integer indexes: the mean offset ``mean_idx / mean_steps`` and the scale
``table[scale_idx]`` of a fixed log-spaced table. The decoder's result therefore depends only
on integers, never on raw floats. Two rounding rules (``CoderSettings.centred``):

- integer bins (coder ids 0, 1): y_hat = round(y_q) = base + residual, base = round(mu),
  the mean offset the fractional part of mu on a 1/mean_steps grid;
- bins centred on the mean (coder id 2): with mu_q = m / mean_steps (mu on that grid),
  y_hat = mu_q + round(y_q - mu_q), the residual coded with mean offset 0. Each group's
  decoded values are kept as integers Y = m + mean_steps * residual, y_hat = Y / mean_steps
  (exact in float32 and float64).

The second rounds y around its prediction, as the mean-scale codecs of Minnen & Singh (2020)
do: with the same weights, Kodak files 2.3% smaller at the same PSNR (BD-rate against id 1;
the model's likelihoods estimate 1.55%; ``scripts/mean_shift.py``).

z is coded with per-channel categorical PMFs computed on the CPU in float64
(``FactorizedPrior.pmf_table``).

ANS is a stack (last in, first out): ``StreamWriter`` records segments in decoding order and
encodes them in reverse when finished, so ``StreamReader`` decodes them in the same order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import constriction
import numpy as np
import torch

from .entropy.grouped_mixer import SCALE_MAX, SCALE_MIN


class DecodeError(ValueError):
    """The coded stream does not decode (damaged data or mismatched numerics)."""


PARAM_DTYPES = {0: torch.float32, 1: torch.float64, 2: torch.float64}
"""CODR coder id -> precision in which h_s and the GroupedMixer compute (mu, sigma).

Id 0 (format 1.0) computes them in float32: a float difference of one ulp between two machines
(another CPU instruction set, a GPU) can cross a rounding boundary of ``quantize_params`` and
make the file undecodable there. Id 1 (format 1.1) computes them in float64,
whose rounding unit (2^-53 against 2^-24) makes such crossings rarer by a factor of ~2^29.
Measured: ``docs/RELIABILITY.md`` section 5. Id 2 (format 1.2) is id 1 with bins centred on
the mean.
"""
MEAN_CENTRED = frozenset({2})
"""Coder ids whose quantization bins are centred on the predicted mean (``quantize_params``)."""


@dataclass(frozen=True)
class CoderSettings:
    """Entropy-coder settings; written to the file (CODR chunk) and read back by the decoder."""

    num_scales: int = 64
    scale_min: float = SCALE_MIN
    scale_max: float = SCALE_MAX
    mean_steps: int = 64
    symbol_range: int = 255
    coder_id: int = 2

    @classmethod
    def written_by(cls, coder_id: int) -> CoderSettings:
        """The settings the reference writer used for a coder id: a 1/8 mean grid before id 2."""
        return cls(mean_steps=64 if coder_id in MEAN_CENTRED else 8, coder_id=coder_id)

    def __post_init__(self) -> None:
        if self.num_scales < 2 or self.mean_steps < 1 or self.symbol_range < 1:
            raise ValueError(f"invalid coder settings {self}")
        if self.coder_id not in PARAM_DTYPES:
            raise ValueError(f"unknown coder id {self.coder_id}")
        if not 0 < self.scale_min < self.scale_max:
            raise ValueError(f"need 0 < scale_min < scale_max, got {self}")

    @property
    def param_dtype(self) -> torch.dtype:
        """Precision of the networks that produce (mu, sigma): h_s and the GroupedMixer."""
        return PARAM_DTYPES[self.coder_id]

    @property
    def centred(self) -> bool:
        """Whether the bins are centred on the predicted mean (else on the integers)."""
        return self.coder_id in MEAN_CENTRED

    @property
    def unit(self) -> int:
        """Decoded values Y are y_hat in units of 1/unit: mean_steps if centred, else 1."""
        return self.mean_steps if self.centred else 1

    def scale_table(self) -> np.ndarray:
        """The log-spaced sigma table, float64."""
        lo, hi = math.log(self.scale_min), math.log(self.scale_max)
        return np.exp(lo + (hi - lo) * np.arange(self.num_scales) / (self.num_scales - 1))


@dataclass(frozen=True)
class GroupParams:
    """Integer coding parameters of one group: decoded Y = base + unit * residual.

    y_hat = Y / unit. Integer bins: unit 1, base = round(mu). Centred bins: unit =
    mean_steps, base = m = round(mu * mean_steps), mean_idx 0.
    """

    base: np.ndarray  # int64
    mean_idx: np.ndarray  # int64 in [-mean_steps/2, mean_steps/2)
    scale_idx: np.ndarray  # int64 in [0, num_scales)
    unit: int = 1


def quantize_params(mu: torch.Tensor, sigma: torch.Tensor, s: CoderSettings) -> GroupParams:
    """Integer parameters from the float (mu, sigma): the only float-to-integer step."""
    lo, hi = math.log(s.scale_min), math.log(s.scale_max)
    steps = s.mean_steps
    m = torch.round(mu.double() * steps).long()
    pos = (sigma.double().clamp_min(1e-30).log() - lo) / (hi - lo) * (s.num_scales - 1)
    scale_idx = _np(pos.round().clamp(0, s.num_scales - 1).long())
    if s.centred:
        return GroupParams(_np(m), np.zeros_like(scale_idx), scale_idx, s.unit)
    base = torch.div(m + steps // 2, steps, rounding_mode="floor")
    return GroupParams(_np(base), _np(m - base * steps), scale_idx)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.reshape(-1).cpu().numpy()


class _Gaussian:
    """Vectorised quantized-Gaussian model family over [-R, R] with table lookups."""

    def __init__(self, s: CoderSettings) -> None:
        self.s = s
        self.table = s.scale_table()
        self.family = constriction.stream.model.QuantizedGaussian(-s.symbol_range, s.symbol_range)

    def args(self, p: GroupParams) -> tuple[np.ndarray, np.ndarray]:
        return p.mean_idx.astype(np.float64) / self.s.mean_steps, self.table[p.scale_idx]


class StreamWriter:
    """Collects coded segments in decoding order; ``finish`` returns the ANS words."""

    def __init__(self, s: CoderSettings) -> None:
        self.gauss = _Gaussian(s)
        self.segments: list[tuple] = []

    def residuals(self, y: np.ndarray, p: GroupParams) -> np.ndarray:
        """Record the residuals of one group's latents y_q; return its decoded Y (int64).

        Integer bins: round(y) - base; centred bins: round(y - base / unit). Clipped to
        [-R, R].
        """
        r = self.gauss.s.symbol_range
        res = np.round(y) - p.base if p.unit == 1 else np.round(y - p.base / p.unit)
        res = np.clip(res, -r, r).astype(np.int32)
        self.segments.append(("gauss", res, *self.gauss.args(p)))
        return p.base + p.unit * res.astype(np.int64)

    def categorical(self, symbols: np.ndarray, pmf: np.ndarray) -> None:
        """Record symbols coded with one categorical PMF."""
        self.segments.append(("cat", symbols.astype(np.int32), pmf))

    def finish(self) -> bytes:
        """Encode all segments (reversed, for the stack) and return little-endian words."""
        coder = constriction.stream.stack.AnsCoder()
        for seg in reversed(self.segments):
            if seg[0] == "gauss":
                coder.encode_reverse(seg[1], self.gauss.family, seg[2], seg[3])
            else:
                model = constriction.stream.model.Categorical(seg[2], perfect=False)
                coder.encode_reverse(seg[1], model)
        return coder.get_compressed().astype("<u4").tobytes()


class StreamReader:
    """Decodes segments in the order a ``StreamWriter`` recorded them."""

    def __init__(self, words: bytes, s: CoderSettings) -> None:
        if len(words) % 4:
            raise DecodeError("coded stream length is not a multiple of 4 bytes")
        data = np.frombuffer(words, dtype="<u4").astype(np.uint32)
        self.gauss = _Gaussian(s)
        try:
            self.coder = constriction.stream.stack.AnsCoder(data)
        except BaseException as e:  # constriction raises on an invalid final word
            raise DecodeError(f"invalid coded stream: {e}") from None

    def residuals(self, p: GroupParams) -> np.ndarray:
        """Decode one group; return its Y = base + unit * residual (int64)."""
        res = self._run(lambda: self.coder.decode(self.gauss.family, *self.gauss.args(p)))
        return p.base + p.unit * res.astype(np.int64)

    def categorical(self, count: int, pmf: np.ndarray) -> np.ndarray:
        model = constriction.stream.model.Categorical(pmf, perfect=False)
        return self._run(lambda: self.coder.decode(model, count)).astype(np.int64)

    def finish(self) -> None:
        """The whole stream must have been consumed."""
        if not self.coder.is_empty():
            raise DecodeError("coded stream has trailing data (damaged or mismatched file)")

    @staticmethod
    def _run(fn):
        try:
            return fn()
        except BaseException as e:  # constriction may panic on garbage (a BaseException)
            if isinstance(e, KeyboardInterrupt):
                raise
            raise DecodeError(f"coded stream does not decode: {e}") from None
