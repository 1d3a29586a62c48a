"""Bring-up: robot profiles, the node graph and the launch description built from it
(pure: no rclpy, no launch import at module level)."""
