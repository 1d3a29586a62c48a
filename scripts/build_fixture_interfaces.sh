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
# shellcheck source=scripts/venv_cmake.sh
. "$ROOT/scripts/venv_cmake.sh"

SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# The hash covers every file of the package (sorted paths and contents), this script and requirements.txt.
hash_of_pkg() {
  {
    (cd "$1" && find . -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum)
    sha256sum "${BASH_SOURCE[0]}" "$ROOT/scripts/venv_cmake.sh"
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
  venv_cmake_install "$VENV" "$src" "$VENV/build/fixture_$pkg" "$pkg" || exit 1
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
