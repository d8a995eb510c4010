"""Constants shared by the codec and the command line, importable without torch.

:mod:`gmcodec.codec` and :mod:`gmcodec.cli` both take these from here, so ``gmx --help``
shows the same range and default that the codec enforces without loading the model.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_EFFORT",
    "DEFAULT_QUALITY",
    "EFFORT_MAX",
    "EFFORT_MIN",
    "QUALITY_MAX",
    "QUALITY_MIN",
]

QUALITY_MIN, QUALITY_MAX = 0.0, 100.0
"""The range of the user-facing quality knob (higher is better)."""
DEFAULT_QUALITY = 75.0
"""The quality used when none is given."""

EFFORT_MIN, EFFORT_MAX = 1, 5
"""The range of the encoder effort (``gmx encode -e``); higher is slower and smaller."""
DEFAULT_EFFORT = 1
"""The effort used when none is given: g_a's latent as is, no refinement."""
