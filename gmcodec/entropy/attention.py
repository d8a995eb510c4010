"""Token mixers of the GroupedMixer: inner-group window attention and causal cross-group
attention with a key/value context cache."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """[R, L, 3d] -> q, k, v each [R, heads, L, d/heads]."""
    r, n, _ = t.shape
    return t.reshape(r, n, 3, heads, -1).permute(2, 0, 3, 1, 4)


def _merge_heads(o: torch.Tensor) -> torch.Tensor:
    """[R, heads, L, dh] -> [R, L, heads*dh]."""
    r, h, n, dh = o.shape
    return o.transpose(1, 2).reshape(r, n, h * dh)


def _partition(x: torch.Tensor, wh: int, ww: int) -> torch.Tensor:
    """[N, Hp, Wp, d] -> windows [N * nh * nw, wh * ww, d]."""
    n, hp, wp, d = x.shape
    x = x.reshape(n, hp // wh, wh, wp // ww, ww, d).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, d)


def _unpartition(w: torch.Tensor, n: int, hp: int, wp: int, wh: int, ww: int) -> torch.Tensor:
    """Inverse of _partition."""
    d = w.shape[-1]
    w = w.reshape(n, hp // wh, wp // ww, wh, ww, d).permute(0, 1, 3, 2, 4, 5)
    return w.reshape(n, hp, wp, d)


class MLP(nn.Module):
    """Pre-norm feed-forward block with a residual connection."""

    def __init__(self, d: int, ratio: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, d * ratio)
        self.fc2 = nn.Linear(d * ratio, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class InnerGroupAttention(nn.Module):
    """Inner-group token mixer: attention among the tokens of one slot, in windows.

    A depthwise 3x3 convolution on the token grid adds position information. All tokens of a
    slot are known when it runs, so no mask is needed beyond padding.
    """

    def __init__(self, d: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.pos = nn.Conv2d(d, d, 3, padding=1, groups=d)
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, hb: int, wb: int) -> torch.Tensor:
        """x: [N, T, d] with T = hb * wb."""
        n, t, d = x.shape
        x = x + self.pos(x.transpose(1, 2).reshape(n, d, hb, wb)).flatten(2).transpose(1, 2)
        wh, ww = min(self.window, hb), min(self.window, wb)
        ph, pw = (-hb) % wh, (-wb) % ww
        h = F.pad(self.norm(x).reshape(n, hb, wb, d), (0, 0, 0, pw, 0, ph))
        q, k, v = _heads(self.qkv(_partition(h, wh, ww)), self.heads)
        mask = self._pad_mask(n, hb, wb, ph, pw, wh, ww, x.device) if ph or pw else None
        o = _merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        o = _unpartition(o, n, hb + ph, wb + pw, wh, ww)[:, :hb, :wb].reshape(n, t, d)
        return x + self.proj(o)

    @staticmethod
    def _pad_mask(
        n: int, hb: int, wb: int, ph: int, pw: int, wh: int, ww: int, device: torch.device
    ) -> torch.Tensor:
        """Boolean key mask [N * windows, 1, 1, L]: True where the key is a real token."""
        valid = torch.zeros(1, hb + ph, wb + pw, 1, dtype=torch.bool, device=device)
        valid[:, :hb, :wb] = True
        keys = _partition(valid, wh, ww)[..., 0]
        return keys.repeat(n, 1)[:, None, None, :]


class CrossGroupAttention(nn.Module):
    """Cross-group token mixer: causal attention across slots at the same token position.

    ``forward`` runs all slots at once under a causal mask (training, no-cache path);
    ``step`` runs one slot and reads/extends the cached keys and values of earlier slots.
    """

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, S, T, d] (S slots)."""
        b, s, t, d = x.shape
        seq = x.permute(0, 2, 1, 3).reshape(b * t, s, d)
        q, k, v = _heads(self.qkv(self.norm(seq)), self.heads)
        o = self.proj(_merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True)))
        return x + o.reshape(b, t, s, d).permute(0, 2, 1, 3)

    def step(self, x: torch.Tensor, cache: dict[str, torch.Tensor]) -> torch.Tensor:
        """x: [B, T, d], one slot; ``cache`` holds keys/values of the earlier slots."""
        b, t, d = x.shape
        q, k, v = _heads(self.qkv(self.norm(x.reshape(b * t, 1, d))), self.heads)
        if cache:
            k = torch.cat([cache["k"], k], dim=2)
            v = torch.cat([cache["v"], v], dim=2)
        cache["k"], cache["v"] = k, v
        o = self.proj(_merge_heads(F.scaled_dot_product_attention(q, k, v)))
        return x + o.reshape(b, t, d)


class MixerBlock(nn.Module):
    """One GroupedMixer block: inner-group mixer + MLP, then cross-group mixer + MLP."""

    def __init__(self, d: int, heads: int, window: int, mlp_ratio: int) -> None:
        super().__init__()
        self.inner = InnerGroupAttention(d, heads, window)
        self.mlp1 = MLP(d, mlp_ratio)
        self.cross = CrossGroupAttention(d, heads)
        self.mlp2 = MLP(d, mlp_ratio)

    def forward(self, x: torch.Tensor, hb: int, wb: int) -> torch.Tensor:
        """x: [B, S, T, d], all slots (teacher forcing)."""
        b, s, t, d = x.shape
        x = self.mlp1(self.inner(x.reshape(b * s, t, d), hb, wb)).reshape(b, s, t, d)
        return self.mlp2(self.cross(x))

    def step(
        self, x: torch.Tensor, hb: int, wb: int, cache: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """x: [B, T, d], one slot, using and extending the context cache."""
        return self.mlp2(self.cross.step(self.mlp1(self.inner(x, hb, wb)), cache))
