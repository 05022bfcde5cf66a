"""Build the three one-device Swift rings, run by the upstream venv's Python.

Usage: ``rings.py SWIFT_DIR ACCOUNT_PORT CONTAINER_PORT OBJECT_PORT``. One
process instead of nine ``swift-ring-builder`` runs keeps start-up short.
"""

from __future__ import annotations

import os
import sys

from swift.common.ring import RingBuilder


def main() -> None:
    swift_dir = sys.argv[1]
    for kind, port in zip(("account", "container", "object"), sys.argv[2:5], strict=True):
        builder = RingBuilder(part_power=6, replicas=1, min_part_hours=1)
        builder.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                         "device": "d1", "weight": 1.0})
        builder.rebalance()
        builder.save(os.path.join(swift_dir, f"{kind}.builder"))
        builder.get_ring().save(os.path.join(swift_dir, f"{kind}.ring.gz"))


if __name__ == "__main__":
    main()
