"""Message I/O (no rclpy): the package's topic names (`topics`), pose and stamp fields between
ROS messages and numpy (`poses`, `fields`), camera frames to RGB arrays (`images`), and rosbag2
writing (`bags`)."""
