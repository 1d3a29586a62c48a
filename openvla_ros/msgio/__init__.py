"""Message I/O: field conversions between ROS messages and numpy."""
