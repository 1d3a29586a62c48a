#!/usr/bin/env bash
# Builds the vendor interface fixtures (test/fixtures/interfaces/*: interbotix_xs_msgs, franka_msgs, control_msgs)
# with CMake into the venv prefix, exactly as scripts/setup_venv.sh builds our own interfaces, so that the arm
# adapter and the simulator node are tested against the real type names. These packages exist on every ROS
# machine that drives the arms; they are neither on PyPI nor in Debian 12, hence the fixtures.
# A package whose inputs (its files, this script, requirements.txt) are unchanged is skipped.
#
# Usage: scripts/build_fixture_interfaces.sh VENV      (e.g. scripts/build_fixture_interfaces.sh .venv)
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 VENV" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "$1" && pwd)"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "$VENV has no bin/python: run scripts/setup_venv.sh first" >&2; exit 2; }
FIXTURES="$ROOT/test/fixtures/interfaces"
STAMPS="$VENV/.openvla_ros"
log() { printf '[fixtures] %s\n' "$*"; }

SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
PYVER="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"

# The hash covers every file of the package (sorted paths and contents), this script and requirements.txt.
hash_of_pkg() {
  {
    (cd "$1" && find . -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum)
    sha256sum "${BASH_SOURCE[0]}"
    [ -f "$ROOT/requirements.txt" ] && sha256sum "$ROOT/requirements.txt"
  } | sed "s#  $ROOT/#  #" | sha256sum | cut -d' ' -f1
}

for pkg in interbotix_xs_msgs franka_msgs control_msgs; do
  src="$FIXTURES/$pkg"
  [ -f "$src/package.xml" ] || { log "missing $src/package.xml"; exit 1; }
  stamp="fixture_$pkg"
  h="$(hash_of_pkg "$src")"
  if [ -f "$STAMPS/$stamp" ] && [ "$(cat "$STAMPS/$stamp")" = "$h" ] && [ -d "$SITE/$pkg" ]; then
    log "$pkg unchanged: skipping CMake"
    continue
  fi
  log "building $pkg with CMake"
  BUILD="$VENV/build/fixture_$pkg"
  rm -rf "$BUILD"; mkdir -p "$BUILD"
  cmake -S "$src" -B "$BUILD" -Wno-dev \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DCMAKE_PREFIX_PATH="$VENV" \
    -DPython3_EXECUTABLE="$PY" \
    -DPYTHON_INSTALL_DIR="lib/python$PYVER/site-packages" \
    -DBUILD_TESTING=OFF > "$BUILD.log" 2>&1 \
    && cmake --build "$BUILD" -j "$(nproc)" >> "$BUILD.log" 2>&1 \
    && cmake --install "$BUILD" >> "$BUILD.log" 2>&1 \
    || { tail -40 "$BUILD.log"; log "$pkg build failed: full log in $BUILD.log"; exit 1; }
  # rosidl leaves an egg-info next to the generated module; pip would take it for an installed distribution.
  rm -rf "$SITE/$pkg"-*.egg-info
  mkdir -p "$STAMPS"; echo "$h" > "$STAMPS/$stamp"
done

"$PY" - <<'PYEOF'
from control_msgs.action import GripperCommand  # noqa: F401
from franka_msgs.action import Grasp, Homing, Move  # noqa: F401
from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand  # noqa: F401
print('[fixtures] ok: interbotix_xs_msgs, franka_msgs, control_msgs import')
PYEOF
