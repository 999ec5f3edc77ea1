"""How turnout is run and watched: the ``turnout`` CLI root, the local stack, provider
simulators, benchmarks, the exporter and the fleet view, dashboards, compose support.

The top layer: may import producers, workers and routing; nothing imports ops.
"""
