# Sourced by scripts/setup_venv.sh and scripts/build_fixture_interfaces.sh: builds one ament_cmake
# interface package with CMake against the ROS wheels in a venv and installs it into the venv prefix.
#
# venv_cmake_install VENV SRC BUILD_DIR LABEL [extra cmake -D arguments...]
# The log goes to BUILD_DIR.log; on failure its tail is printed and the function returns 1.
venv_cmake_install() {
  local venv="$1" src="$2" build="$3" label="$4"
  shift 4
  local py="$venv/bin/python"
  local pyver
  pyver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  rm -rf "$build"; mkdir -p "$build"
  # The venv's Python carries the ROS libraries on its library path; rosidl's generators run it.
  AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" cmake -S "$src" -B "$build" -Wno-dev \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$venv" \
    -DCMAKE_PREFIX_PATH="$venv" \
    -DPython3_EXECUTABLE="$py" \
    -DPYTHON_INSTALL_DIR="lib/python$pyver/site-packages" \
    -DBUILD_TESTING=OFF "$@" > "$build.log" 2>&1 \
    && AMENT_PREFIX_PATH="$venv" cmake --build "$build" -j "$(nproc)" >> "$build.log" 2>&1 \
    && cmake --install "$build" >> "$build.log" 2>&1 \
    || { tail -40 "$build.log"; echo "$label: CMake build failed, full log in $build.log" >&2; return 1; }
}
