"""The CLI's one known-error type: a verb raises it, ``openvla_ros.cli.main`` prints it.

It lives apart from ``main.py`` so that the verbs and ``python -m openvla_ros.cli.main`` (where
``main.py`` runs as ``__main__``, a second copy of that module) share one class.
"""

from __future__ import annotations

__all__ = ['CliError']


class CliError(Exception):
    """A known error: printed as one line ``openvla-ros <verb>: <message>`` on stderr, exit 1.

    Raise it ``from`` the library error it reports: an empty message then prints that error's type.
    """
