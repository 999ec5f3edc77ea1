"""``python -m ops.simulator``: the same as ``turnout simulate``."""

from ops.stack_commands import simulate_main

simulate_main()
