"""Traffic: the paced generator in tg, the counting sink in ts, and the agents that run them
inside their namespaces."""
