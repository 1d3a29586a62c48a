"""Exceptions of the data package: every known failure of recording and reading datasets.

All derive from `DataError` (a ValueError), so a CLI turns them into one line on stderr.
"""

from __future__ import annotations

__all__ = [
    'BagReadError',
    'DataError',
    'DatasetFormatError',
    'EmptyDatasetError',
    'MissingTopicError',
    'NoImagesError',
]


class DataError(ValueError):
    """Base class of every known failure of the data package."""


class BagReadError(DataError):
    """A bag path does not exist or cannot be opened / deserialized by rosbags."""


class MissingTopicError(DataError):
    """A topic the recording needs is not in the bag (the message lists the bag's topics)."""


class NoImagesError(DataError):
    """The image topic exists but holds no messages."""


class EmptyDatasetError(DataError):
    """No step survived (no overlap of the streams, or every action was all-zero)."""


class DatasetFormatError(DataError):
    """A dataset directory is missing `dataset.json` or an episode file, or has a bad version."""
