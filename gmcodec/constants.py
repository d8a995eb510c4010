"""Constants shared by the codec and the command line, importable without torch.

:mod:`gmcodec.codec` and :mod:`gmcodec.cli` both take these from here, so ``gmx --help``
shows the same range and default that the codec enforces without loading the model.
"""

from __future__ import annotations

__all__ = ["DEFAULT_QUALITY", "QUALITY_MAX", "QUALITY_MIN"]

QUALITY_MIN, QUALITY_MAX = 0.0, 100.0
"""The range of the user-facing quality knob (higher is better)."""
DEFAULT_QUALITY = 75.0
"""The quality used when none is given."""
