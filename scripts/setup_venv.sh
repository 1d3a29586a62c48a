#!/usr/bin/env bash
# Creates .venv/ in the repository root with everything openvla_ros and its tests need:
# the pinned Python packages (requirements.txt), the ROS 2 Kilted wheels (rclpy, messages, rosidl + ament_cmake),
# our own interfaces (msg/) built with CMake into the venv, and openvla_ros itself installed editable.
# Re-running it is fast and harmless: each step is skipped when its inputs have not changed.
#
# Usage: scripts/setup_venv.sh            (PYTHON=python3.11 by default; VENV=.venv by default)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMPS="$VENV/.openvla_ros"
log() { printf '[setup] %s\n' "$*"; }
# shellcheck source=scripts/venv_cmake.sh
. "$ROOT/scripts/venv_cmake.sh"

# Stamp helpers: a step reruns only when the hash of its inputs changes.
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
is_done() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark_done() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# 0. system tools and libraries: CMake and a C/C++ compiler build our interfaces; MuJoCo renders
# offscreen through Mesa's EGL. Installed with apt-get where they are missing and we may (root).
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v c++ >/dev/null || missing+=(g++)
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || missing+=(libegl1 libgl1-mesa-dri)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing system packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "missing system packages: ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})"
    exit 1
  fi
fi

# 1. the virtual environment
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# 2. the pinned packages (torch 2.14.1 / torchvision 0.29.1 come from local wheels where pip finds them)
req_hash="$(hash_of "$ROOT/requirements.txt")"
if ! is_done requirements "$req_hash"; then
  log "installing requirements.txt (first run: several minutes, torch is ~5.5 GB)"
  # (pip warns once per package that the machine's local index folders lack it: harmless, filtered)
  "$PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt" 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  [ "${PIPESTATUS[0]}" -eq 0 ] || { log "pip install failed"; exit 1; }
  mark_done requirements "$req_hash"
  rm -f "$STAMPS/cmake_paths"
else
  log "requirements.txt unchanged: skipping pip"
fi

# 3. the ROS wheels' CMake files name the wheel builder's Python paths; point them at this interpreter and venv.
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
PYINC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
if ! is_done cmake_paths "$req_hash"; then
  log "rewriting the ROS wheels' CMake paths to $PYINC and $SITE"
  { grep -rlZ --include='*.cmake' -e "/opt/python/cp" "$VENV/share" 2>/dev/null || true; } \
    | xargs -0 -r sed -i \
        -e "s#/opt/python/cp[0-9]*-cp[0-9]*/include/python[0-9.]*#$PYINC#g" \
        -e "s#/opt/python/cp[0-9]*-cp[0-9]*/lib/python[0-9.]*/site-packages#$SITE#g"
  mark_done cmake_paths "$req_hash"
fi

# 4. our interfaces (msg/*.msg) -> C/C++/Python type support installed into the venv prefix
msg_hash="$(hash_of "$ROOT"/msg/*.msg "$ROOT/CMakeLists.txt" "$ROOT/package.xml" "$ROOT/requirements.txt" \
  "$ROOT/scripts/venv_cmake.sh")"
if ! is_done interfaces "$msg_hash" || [ ! -d "$SITE/openvla_ros/msg" ]; then
  log "building the openvla_ros interfaces with CMake"
  venv_cmake_install "$VENV" "$ROOT" "$VENV/build/openvla_ros_interfaces" openvla_ros \
    -DOPENVLA_ROS_INTERFACES_ONLY=ON || exit 1
  mark_done interfaces "$msg_hash"
else
  log "interfaces unchanged: skipping CMake"
fi
# rosidl also installs an empty openvla_ros/__init__.py and an egg-info for it. Ours (in the checkout) must be the
# package imported, and pip must not take the generated files for an old install of openvla_ros and delete them;
# our __init__.py extends its __path__ to the generated directory, so openvla_ros.msg still resolves.
rm -rf "$SITE/openvla_ros/__init__.py" "$SITE"/openvla_ros-*.egg-info

# 4b. interface-compatible fixtures of vendor packages that cannot be installed here (Interbotix, Franka,
# control_msgs), built from their public definitions so the adapters are tested against the real types
"$ROOT/scripts/build_fixture_interfaces.sh" "$VENV"

# 5. openvla_ros itself, editable (a .pth entry to this checkout) with its console scripts
# (re-run when the package's metadata or its data files change: pip copies launch/, config/, rviz/
# into share/openvla_ros, where `ros2 launch` and ament_index look for them)
if [ ! -f "$STAMPS/editable" ] || [ ! -d "$VENV/share/openvla_ros/launch" ] \
   || [ -n "$(find "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml" "$ROOT/resource" "$ROOT/launch" \
        "$ROOT/config" "$ROOT/rviz" -newer "$STAMPS/editable" -print -quit)" ]; then
  log "installing openvla_ros (editable)"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    --config-settings editable_mode=compat -e "$ROOT"
  touch "$STAMPS/editable"
fi

log "checking the environment"
"$PY" - <<'PYEOF'
import rclpy, torch, transformers, timm, openvla_ros
from openvla_ros.msg import ActionChunk, SafetyStatus
print(f'[setup] ok: torch {torch.__version__}, transformers {transformers.__version__}, timm {timm.__version__}, '
      f'rclpy from {rclpy.__file__.rsplit("/", 2)[0]}')
PYEOF
log "done: activate with 'source .venv/bin/activate', run the tests with scripts/run_tests.sh"
