#!/usr/bin/env python
"""CPU per ROS node of the launched graph (separate processes, no ROS 2 launch tools needed) and
the camera watchdog's cost. Usage (in .venv):

    .venv/bin/python scripts/ros_cpu_bench.py widowx_bridge franka_tabletop franka_droid \
        --window 30 --warmup 5 [--json]

See openvla_ros/nodes/cpu_bench.py; results and the machine in docs/benchmarks.md."""

from openvla_ros.nodes.cpu_bench import main

if __name__ == '__main__':
    raise SystemExit(main())
