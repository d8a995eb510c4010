"""Encode/decode orchestration: image <-> model <-> entropy coder <-> .gmx container.

Encoder and decoder drive ONE group loop (``group_loop``): it runs the GroupedMixer slot by slot
with the context cache and hands each group's integer parameters to a callback that either
codes the group (encoder) or decodes it (decoder) and returns the decoded values.
"""

from __future__ import annotations

import copy
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from . import container as ct
from .coder import (
    CoderSettings,
    DecodeError,
    GroupParams,
    StreamReader,
    StreamWriter,
    quantize_params,
)
from .config import ModelConfig
from .constants import DEFAULT_EFFORT, DEFAULT_QUALITY, QUALITY_MAX, QUALITY_MIN
from .device import pick_device
from .entropy.grouped_mixer import GroupedMixer
from .imageio import pad, to_image, to_tensor
from .model import GMModel
from .pixels import PixelWarning, Prepared, prepare
from .refine import EffortWarning, can_refine, refine_latent, steps_for
from .tiling import analysis, synthesis


class MismatchError(DecodeError):
    """Decoded symbols differ from the encoder's: different numerics (device or library)."""


def quality_to_q(
    quality: float,
    num_qualities: int,
    q_low: float = ModelConfig.q_low,
    q_high: float | None = None,
) -> float:
    """Map the user quality 0..100 (higher is better) linearly onto the model's q.

    0 -> q = ``q_low`` (the model config's: -2 for gm-small-v1, -2.7 from gm-small-v3 on) and
    100 -> q = ``q_high`` (the config's; K when unset): the trained range [0, K-1] plus
    extrapolated margins of the gain vectors, which extend the rate range downwards (and a
    little upwards).
    """
    if not QUALITY_MIN <= quality <= QUALITY_MAX:
        raise ValueError(f"quality must be in [0, 100], got {quality}")
    top = num_qualities if q_high is None else q_high
    return q_low + quality / QUALITY_MAX * (top - q_low)


class _Checksums:
    """A tile's checksums in one pass over its symbols (little-endian int32).

    :meth:`add` returns the CRC-32 of one piece (z, then each group, in decoding order) and
    chains the same bytes into ``tile``, the tile checksum, which starts from ``seed``
    (``container.checksum_seed``).
    """

    def __init__(self, seed: int) -> None:
        self.tile = seed

    def add(self, values: np.ndarray) -> int:
        data = values.astype("<i4").tobytes()
        self.tile = zlib.crc32(data, self.tile)
        return zlib.crc32(data)


def group_loop(
    entropy: GroupedMixer,
    psi: torch.Tensor,
    settings: CoderSettings,
    code_group: Callable[[int, GroupParams], np.ndarray],
) -> list[np.ndarray]:
    """Run the G groups in order; ``code_group(g, params)`` returns group g's decoded values Y.

    Y is y_hat in units of 1/``settings.unit`` (``coder.GroupParams``). Slot g sees decoded
    group g-1 and, through the cached cross-group keys/values, every
    earlier group: one slot per group, never a recomputation of the earlier ones.
    """
    layout = entropy.layout
    grid = layout.grid(*psi.shape[-2:])
    psi_t, cache = entropy.psi_tokens(psi), entropy.new_cache()
    prev, decoded = None, []
    for g in range(layout.num_groups):
        mu, sigma = entropy.step(g, prev, psi_t, grid, cache)
        y_g = code_group(g, quantize_params(mu, sigma, settings))
        decoded.append(y_g)
        prev = torch.from_numpy(y_g).to(psi.device, psi.dtype).reshape(mu.shape) / settings.unit
    return decoded


@dataclass
class Stages:
    """Seconds spent per stage (filled only when timing is requested)."""

    enabled: bool = False
    sync: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    _t: float = 0.0

    def start(self) -> None:
        if self.enabled:
            self._mark()

    def lap(self, name: str) -> None:
        if self.enabled:
            prev = self._t
            self._mark()
            self.seconds[name] = self.seconds.get(name, 0.0) + self._t - prev

    def _mark(self) -> None:
        if self.sync:
            torch.cuda.synchronize()
        self._t = time.perf_counter()


def split_image(img: Image.Image) -> Prepared:
    """The pixels to code and what travels with them (see gmcodec.pixels).

    Conversions the user should hear about are issued as ``pixels.PixelWarning``; a refused
    image raises ValueError.
    """
    prepared = prepare(img)
    for message in prepared.warnings:
        warnings.warn(message, PixelWarning, stacklevel=2)
    return prepared


class Codec:
    """A loaded model on a device, able to encode images to .gmx bytes and back."""

    def __init__(
        self,
        model: GMModel,
        model_id: str,
        sha256: str,
        device: torch.device,
        settings: CoderSettings | None = None,
        limits: ct.Limits | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        if device.type == "cpu":  # ~1.5x faster convolutions on CPU; the coded symbols are
            # unaffected: g_a runs only in the encoder, g_s after entropy decoding
            for transform in (self.model.g_a, self.model.g_s):
                transform.to(memory_format=torch.channels_last)
        self.model_id, self.sha256, self.device = model_id, sha256, device
        self.settings = settings or CoderSettings()
        self.limits = limits or ct.Limits()
        self.pmf = model.prior.pmf_table()
        self._others: dict[str, Codec] = {}
        self._param_nets: dict[torch.dtype, tuple[torch.nn.Module, GroupedMixer]] = {
            torch.float32: (self.model.h_s, self.model.entropy)
        }
        self.z_range = model.prior.z_range

    @classmethod
    def load(
        cls, model_id: str | None = None, device: str = "auto", limits: ct.Limits | None = None
    ) -> Codec:
        """Load shipped weights (hash-checked) onto 'auto', 'cpu' or 'cuda'."""
        from .zoo import load_model

        dev = pick_device(device)
        if dev.type == "cuda":  # the entropy parameters must be reproducible run to run
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        model, mid, digest = load_model(model_id)
        return cls(model, mid, digest, dev, limits=limits)

    # ----------------------------------------------------------------- encode
    def encode(
        self,
        img: Image.Image,
        quality: float = DEFAULT_QUALITY,
        effort: int = DEFAULT_EFFORT,
        version: tuple[int, int] = ct.FORMAT_VERSION,
    ) -> bytes:
        """Encode a PIL image; quality 0..100 (higher is better), effort 1..5 (see refine).

        ``version``: the container format, 2.0 or ``ct.LEGACY_VERSION`` (1.2, for 1.x readers).
        """
        return self.encode_timed(img, quality, timing=False, effort=effort, version=version)[0]

    def model_q(self, quality: float) -> float:
        """This model's q for a user quality 0..100 (its config's q_low .. q_high)."""
        cfg = self.model.cfg
        return quality_to_q(quality, self.model.num_qualities, cfg.q_low, cfg.q_high)

    @torch.no_grad()
    def encode_timed(
        self,
        img: Image.Image,
        quality: float = DEFAULT_QUALITY,
        timing: bool = True,
        effort: int = DEFAULT_EFFORT,
        version: tuple[int, int] = ct.FORMAT_VERSION,
    ) -> tuple[bytes, dict[str, float]]:
        """Encode and return (bytes, seconds per stage)."""
        steps = steps_for(effort)
        centi = round(float(quality) * 100)
        q = self.model_q(centi / 100)
        prep = split_image(img)
        rgb, channels, alpha = prep.rgb, prep.channels, prep.alpha
        _check_size(rgb.width, rgb.height, self.limits)
        info = ct.ImageInfo(rgb.width, rgb.height, channels, 8, 0 if channels == 3 else 1)
        model, coder = ct.ModelInfo(self.model_id, self.sha256), self._coder_info(centi)
        alpha_data = ct.deflate_alpha(alpha, info) if alpha is not None else None
        seed = ct.checksum_seed(info, model, coder, alpha_data, (0, 0, rgb.width, rgb.height))
        st = Stages(timing, self.device.type == "cuda")
        st.start()
        tile, _ = self._encode_tile(to_tensor(rgb).to(self.device), q, st, steps, seed)
        f = ct.GmxFile(
            info,
            model,
            coder,
            (tile,),
            icc_profile=prep.icc_profile or None,
            exif=_exif_bytes(prep.exif),
            alpha=alpha_data,
        )
        data = ct.serialize(f, version)
        st.lap("container")
        return data, st.seconds

    def _coder_info(self, centi: int) -> ct.CoderInfo:
        s = self.settings
        return ct.CoderInfo(
            centi, s.num_scales, s.scale_min, s.scale_max, s.mean_steps, s.symbol_range, s.coder_id
        )

    def param_nets(self, s: CoderSettings) -> tuple[torch.nn.Module, GroupedMixer]:
        """(h_s, GroupedMixer) in the precision the coder id names (``coder.PARAM_DTYPES``).

        psi = h_s(z_hat) and every slot's (mu, sigma) are computed in that dtype. The float64
        copies are made on first use and kept, so they do not follow later edits of
        ``self.model``'s weights.
        """
        dtype = s.param_dtype
        if dtype not in self._param_nets:
            m = self.model
            self._param_nets[dtype] = (
                copy.deepcopy(m.h_s).to(dtype),
                copy.deepcopy(m.entropy).to(dtype),
            )
        return self._param_nets[dtype]

    def _encode_tile(
        self, x: torch.Tensor, q: float, st: Stages, steps: int = 0, seed: int = 0
    ) -> tuple[ct.Tile, list[np.ndarray]]:
        """Code one tile; returns it with the decoded groups (what the decoder will see).

        ``steps`` > 0 refines g_a's latent first (``gmcodec.refine``); ``seed`` is where the
        tile checksum starts (``container.checksum_seed``).
        """
        m, s = self.model, coder_settings(self._coder_info(0))
        y = self.latent(x, q, steps, st)
        z_int = m.h_a(y).round().clamp(-self.z_range, self.z_range)
        h_s, entropy = self.param_nets(s)
        psi = h_s(z_int.to(s.param_dtype))
        st.lap("hyperprior")
        writer = StreamWriter(s)
        z_np = z_int[0].flatten(1).long().cpu().numpy()
        for c in range(z_np.shape[0]):
            writer.categorical(z_np[c] + self.z_range, self.pmf[c])
        layout = m.entropy.layout
        y_groups = [t.reshape(-1).detach().double().cpu().numpy() for t in layout.split(y)]
        decoded = group_loop(entropy, psi, s, lambda g, p: writer.residuals(y_groups[g], p))
        st.lap("mixer")
        words = writer.finish()
        st.lap("coder")
        h, w = x.shape[-2:]
        crcs = _Checksums(seed)
        z_crc, sums = crcs.add(z_np), tuple(crcs.add(d) for d in decoded)
        tile = ct.Tile(0, 0, w, h, z_crc, sums, words, crcs.tile)
        return tile, decoded

    def latent(
        self, x: torch.Tensor, q: float, steps: int = 0, st: Stages | None = None
    ) -> torch.Tensor:
        """y_q = g_a(x) * gain(q) for the unpadded x [1, 3, h, w] in [0, 1] at model q.

        ``steps`` > 0 refines it (``gmcodec.refine``) unless the image is too large, which
        warns with :class:`~gmcodec.refine.EffortWarning`.
        """
        m, st = self.model, st or Stages()
        gain, _ = m.gains(torch.tensor([q]))
        padded = pad(x)
        y = analysis(m.g_a, padded) * gain
        st.lap("transforms")
        if steps and not can_refine(*padded.shape[-2:]):
            warnings.warn(
                f"image too large to refine ({x.shape[-1]}x{x.shape[-2]}): encoded at effort 1",
                EffortWarning,
                stacklevel=3,
            )
        elif steps:
            y = refine_latent(m, x, y, q, steps, centred=self.settings.centred)[0]
            st.lap("refine")
        # contiguous: h_a/h_s must see the same memory layout as in the decoder (bit-exact psi)
        return y.contiguous()

    # ----------------------------------------------------------------- decode
    def decode(self, data: bytes) -> Image.Image:
        """Decode .gmx bytes to a PIL image (mode L, LA, RGB or RGBA)."""
        return self.decode_timed(data, timing=False)[0]

    @torch.no_grad()
    def decode_timed(
        self, data: bytes, timing: bool = True
    ) -> tuple[Image.Image, dict[str, float]]:
        """Decode and return (image, seconds per stage)."""
        st = Stages(timing, self.device.type == "cuda")
        st.start()
        f = ct.parse(data, self.limits)
        owner = self.codec_for(f.model)
        if owner is not self:
            return owner.decode_timed(data, timing)
        st.lap("container")
        q = self.model_q(f.coder.quality)
        canvas = Image.new("RGB", (f.image.width, f.image.height))
        for tile in f.tiles:
            seed = f.checksum_seed(tile)
            x_hat = self._decode_tile(tile, q, coder_settings(f.coder), st, seed)
            canvas.paste(to_image(x_hat), (tile.x, tile.y))
        img = canvas.convert("L") if f.image.channels == 1 else canvas
        if f.alpha is not None:
            alpha = Image.frombytes("L", img.size, ct.inflate_alpha(f, self.limits))
            img = img.convert("LA" if img.mode == "L" else "RGBA")
            img.putalpha(alpha)
        _attach_metadata(img, f)
        st.lap("container")
        return img, st.seconds

    def codec_for(self, info: ct.ModelInfo) -> Codec:
        """The Codec for the model a file names: this one, or another shipped model.

        Older files keep decoding after the default model changes, as long as the weights
        they name (id and sha256) still ship in ``weights/``.
        """
        if info.model_id == self.model_id and info.matches(self.sha256):
            return self
        if info.model_id not in self._others:
            from .zoo import WeightsError

            try:
                other = Codec.load(info.model_id, str(self.device), self.limits)
            except WeightsError as e:
                raise DecodeError(f"file was made with model '{info.model_id}': {e}") from None
            self._others[info.model_id] = other
        other = self._others[info.model_id]
        if not info.matches(other.sha256):
            raise DecodeError(
                f"file was made with model '{info.model_id}' weights {info.weights_sha256[:12]}, "
                f"this gmx ships {other.sha256[:12]} under that name"
            )
        return other

    def _decode_z(
        self, reader: StreamReader, tile: ct.Tile, hz: int, wz: int, crcs: _Checksums
    ) -> np.ndarray:
        """z values [Nz, hz * wz], checksum verified."""
        z_np = np.stack([reader.categorical(hz * wz, pmf) - self.z_range for pmf in self.pmf])
        if not tile.z_matches(crcs.add(z_np)):
            raise MismatchError("hyper-latent checksum mismatch: the file is damaged")
        return z_np

    def decode_latents(
        self,
        tile: ct.Tile,
        s: CoderSettings,
        seed: int,
        observe: Callable[[int, GroupParams, np.ndarray], None] | None = None,
        st: Stages | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Entropy-decode one tile: (z values [Nz, hz*wz], decoded groups of y_hat).

        Every checksum is verified, the tile checksum from ``seed`` on (``GmxFile.
        checksum_seed``). ``observe(g, params, y_g)`` sees each group as it is decoded
        (``gmcodec.analysis`` counts bits with it).
        """
        st = st or Stages()
        layout = self.model.entropy.layout
        if len(tile.group_checksums) != layout.num_groups:
            raise DecodeError(
                f"file has {len(tile.group_checksums)} groups, model has {layout.num_groups}"
            )
        hz, wz = -(-tile.height // 64), -(-tile.width // 64)
        reader = StreamReader(tile.words, s)
        crcs = _Checksums(seed)
        z_np = self._decode_z(reader, tile, hz, wz, crcs)
        h_s, entropy = self.param_nets(s)
        z = torch.from_numpy(z_np).reshape(1, -1, hz, wz).to(self.device, s.param_dtype)
        psi = h_s(z)
        st.lap("hyperprior")

        def decode_group(g: int, p: GroupParams) -> np.ndarray:
            y_g = reader.residuals(p)
            if not tile.group_matches(g, crcs.add(y_g)):
                what = f"decoded symbols of group {g}/{layout.num_groups}"
                raise MismatchError(_MISMATCH.format(what=what))
            if observe is not None:
                observe(g, p, y_g)
            return y_g

        groups = group_loop(entropy, psi, s, decode_group)
        reader.finish()
        if not tile.tile_matches(crcs.tile):
            raise MismatchError(_MISMATCH.format(what="the tile's decoded symbols"))
        st.lap("mixer")
        return z_np, groups

    def _decode_tile(
        self, tile: ct.Tile, q: float, s: CoderSettings, st: Stages, seed: int
    ) -> torch.Tensor:
        _, groups = self.decode_latents(tile, s, seed, st=st)
        x_hat = self._synthesize(groups, tile.height, tile.width, q, s.unit)
        st.lap("transforms")
        return x_hat

    def _synthesize(
        self, groups: list[np.ndarray], height: int, width: int, q: float, unit: int
    ) -> torch.Tensor:
        """x_hat [1, 3, height, width] from the decoded groups Y (y_hat = Y / unit)."""
        m = self.model
        layout = m.entropy.layout
        hy, wy = -(-height // 64) * 4, -(-width // 64) * 4
        tokens = [
            torch.from_numpy(v).to(self.device, torch.float32).reshape(1, -1, layout.channels(i))
            for i, v in enumerate(groups)
        ]
        _, inv_gain = m.gains(torch.tensor([q]))
        y_hat = layout.merge(tokens, hy, wy) / unit * inv_gain
        return synthesis(m.g_s, y_hat)[..., :height, :width]

    @torch.no_grad()
    def reconstruct(
        self, img: Image.Image, quality: float = DEFAULT_QUALITY, effort: int = DEFAULT_EFFORT
    ) -> Image.Image:
        """The RGB image a decoder will produce, computed from the encoder's own y_hat."""
        q = self.model_q(round(float(quality) * 100) / 100)
        rgb = split_image(img).rgb
        x = to_tensor(rgb).to(self.device)
        _, groups = self._encode_tile(x, q, Stages(), steps_for(effort))
        return to_image(self._synthesize(groups, rgb.height, rgb.width, q, self.settings.unit))

    # ----------------------------------------------------------------- profiling
    @torch.no_grad()
    def time_entropy_model(self, img: Image.Image, quality: float, use_cache: bool = True) -> float:
        """Seconds to compute all groups' parameters, with or without the context cache.

        Runs in the precision new files are coded with (``self.settings``).
        """
        h_s, e = self.param_nets(self.settings)
        dtype = self.settings.param_dtype
        rgb = split_image(img).rgb
        y = self.latent(to_tensor(rgb).to(self.device), self.model_q(quality)).round()
        psi = h_s(self.model.h_a(y).round().clamp(-self.z_range, self.z_range).to(dtype))
        groups = e.layout.split(y.to(dtype))
        st = Stages(True, self.device.type == "cuda")
        st.start()
        self._all_params(e, groups, psi, use_cache)
        st.lap("entropy")
        return st.seconds["entropy"]

    @staticmethod
    def _all_params(
        e: GroupedMixer, groups: list[torch.Tensor], psi: torch.Tensor, use_cache: bool
    ) -> None:
        grid, psi_t, cache = e.layout.grid(*psi.shape[-2:]), e.psi_tokens(psi), e.new_cache()
        for g in range(e.layout.num_groups):
            if use_cache:
                e.step(g, groups[g - 1] if g else None, psi_t, grid, cache)
            else:
                e.step_nocache(g, groups, psi_t, grid)


_MISMATCH = (
    "{what} do not match the encoder's checksum: the file was "
    "encoded with different numerics (another device type or library version) or is damaged; "
    "decode it on the same kind of device it was encoded on (--device cpu or --device cuda)"
)


def coder_settings(c: ct.CoderInfo) -> CoderSettings:
    """The coder settings a file's CODR chunk names."""
    return CoderSettings(
        c.num_scales, c.scale_min, c.scale_max, c.mean_steps, c.symbol_range, c.coder_id
    )


def _check_size(width: int, height: int, limits: ct.Limits) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"image is empty ({width}x{height})")
    problem = limits.exceeded(width, height)
    if problem:
        raise ValueError(problem)


def _exif_bytes(exif: bytes | None) -> bytes | None:
    """EXIF as the container stores it (from the TIFF header on, FORMAT.md 3.7)."""
    from .pillow_plugin import container_exif

    return container_exif(exif)


def _attach_metadata(img: Image.Image, f: ct.GmxFile) -> None:
    if f.icc_profile:
        img.info["icc_profile"] = f.icc_profile
    if f.exif:
        from .pillow_plugin import pillow_exif

        img.info["exif"] = pillow_exif(f.exif)


_CODECS: dict[str, Codec] = {}


def get_codec(device: str = "auto") -> Codec:
    """A Codec for the default model on ``device``, loaded once per process."""
    key = str(pick_device(device))
    if key not in _CODECS:
        _CODECS[key] = Codec.load(device=key)
    return _CODECS[key]


def encode(
    image: Image.Image,
    quality: float | None = None,
    device: str = "auto",
    effort: int = DEFAULT_EFFORT,
) -> bytes:
    """Encode a PIL image to .gmx bytes with the default model (effort: see gmcodec.refine)."""
    q = DEFAULT_QUALITY if quality is None else quality
    return get_codec(device).encode(image, q, effort)


def decode(data: bytes, device: str = "auto") -> Image.Image:
    """Decode .gmx bytes to a PIL image."""
    return get_codec(device).decode(data)
