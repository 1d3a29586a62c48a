"""Exceptions of the control core.

Each exception is also a built-in error type (``ValueError``, ``RuntimeError``) so callers that do
not know this package can still catch it by the usual name.
"""

from __future__ import annotations


class ControlError(Exception):
    """Base class of every error raised by ``openvla_ros.control``."""


class ConfigError(ControlError, ValueError):
    """A configuration key or value is invalid; the message names the
    field, the value and the limit."""


class UnknownNameError(ControlError, ValueError):
    """A robot, action space or merge policy name is not known; the message lists the known
    names."""


class NotReadyError(ControlError, RuntimeError):
    """An object was used before it was given the state it needs (e.g. the limiter before
    ``reset``)."""
