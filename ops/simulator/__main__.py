"""``python -m ops.simulator``: the same as ``turnout simulate``."""

from ops.cli import simulate_main

simulate_main()
