"""How turnout is run and watched: the local stack, provider simulators, benchmarks."""
