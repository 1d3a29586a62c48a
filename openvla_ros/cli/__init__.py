"""``openvla-ros``: the command-line interface (one module per verb)."""
