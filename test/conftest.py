"""Suite-wide settings: DDS stays on this machine, rendering is headless, nothing reaches a model hub."""
from __future__ import annotations

import os

# Set before any test imports rclpy or mujoco. Each pytest process gets its own DDS domain, so that two test runs
# on one machine (or a test and a running demo) never see each other's topics.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
