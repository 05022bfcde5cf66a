"""imagefleet's plain library: config, image tools, cloud clients, verification.

Nothing here imports luigi; the thin tasks in ``tasks/`` call into this package.
"""
