"""Fixtures of the recording tests: synthetic bags written with rosbags."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
