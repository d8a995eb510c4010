"""Which torch device to run on (shared by coding and training)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA GPU is available")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device '{name}' (use auto, cpu or cuda)")
    return torch.device(name)


@lru_cache
def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True if the CPU computes bf16 natively (x86 flags amx_bf16 or avx512_bf16).

    Without such units bf16 autocast is emulated and far slower than fp32 (docs/TRAINING.md);
    the flags are read from ``cpuinfo``, and a system without that file counts as no bf16.
    """
    try:
        flags = Path(cpuinfo).read_text(errors="replace").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def use_bf16(device: torch.device, mode: str = "auto") -> bool:
    """Whether training autocasts to bf16: 'on', 'off', or 'auto' (CUDA, or a CPU with bf16)."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"unknown bf16 mode '{mode}' (use auto, on or off)")
    if mode != "auto":
        return mode == "on"
    return device.type == "cuda" or cpu_has_bf16()


def gradient_attention(device: torch.device) -> AbstractContextManager[None]:
    """The attention kernel for passes that backpropagate (training, refinement) on ``device``.

    On a CPU, the math kernel: the GroupedMixer's attention runs over many short sequences
    (the slots at one token position, 8x8 windows), where the fused CPU kernel's bf16 backward
    is slow (``scripts/cpu_speed.py --compile [--fused-attention]``, docs/TRAINING.md: 0.335
    against 0.461 s per compiled bf16 step; fp32 steps are the same either way). On CUDA,
    PyTorch's own choice.
    """
    return sdpa_kernel(SDPBackend.MATH) if device.type == "cpu" else nullcontext()
