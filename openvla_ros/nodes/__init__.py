"""The thin rclpy shell: one node per module, each converting messages to core types and back."""
