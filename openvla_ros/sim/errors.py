"""Errors raised by the simulator core (bad inputs raise ``ValueError`` instead)."""

from __future__ import annotations


class SimError(RuntimeError):
    """The simulator cannot do what was asked (e.g. it was used after ``close()``)."""
