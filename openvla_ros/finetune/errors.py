"""Exceptions of the fine-tuning package (all ValueErrors, so a CLI prints one line)."""

from __future__ import annotations

__all__ = ['CheckpointMismatchError', 'FinetuneError']


class FinetuneError(ValueError):
    """A known failure of fine-tuning: bad settings, an unusable output directory, ..."""


class CheckpointMismatchError(FinetuneError):
    """A checkpoint to resume from was written with incompatible settings."""
