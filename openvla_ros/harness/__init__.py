"""The in-process harness: runs the node graph inside one process (rollouts for demo,
evaluate and learn; the pipeline bench). With nodes/, the only place rclpy is imported."""
