#!/usr/bin/env bash
# Runs the whole test suite in .venv/ (created by scripts/setup_venv.sh). Extra arguments go to pytest.
# DDS stays on this machine: discovery is limited to localhost (ROS_LOCALHOST_ONLY=1 is the Humble spelling).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ -x .venv/bin/python ] || { echo "no .venv: run scripts/setup_venv.sh first" >&2; exit 2; }
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
