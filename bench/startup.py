"""Local cloud start-up against a bare Python HTTP server, same run, same machine.

Starts the local cloud with every shipped personality on a fresh data dir, then
again on the same data dir (a restart reads its persisted state), ``--runs``
times each, and the baseline: ``python -m http.server`` on loopback, timed to
its first answer. Printed: medians and the ratio of each to the baseline.

    .venv/bin/python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from localcloud.testing import running_cloud  # noqa: E402
from pipeline.core.ports import free_port  # noqa: E402
from tests.localcloud.conftest import ALL  # noqa: E402


def bare_http_server() -> float:
    """Seconds from exec to the first accepted connection of ``python -m http.server``."""
    port = free_port()
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return time.monotonic() - began
            except OSError:
                if process.poll() is not None or time.monotonic() - began > 30:
                    raise RuntimeError("http.server did not start") from None
                time.sleep(0.01)
    finally:
        process.terminate()
        process.wait()


def local_cloud(data_dir: Path) -> float:
    with running_cloud(ALL, data_dir) as cloud:
        return cloud.startup_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    fresh, restart, bare = [], [], []
    for _ in range(args.runs):
        data_dir = Path(tempfile.mkdtemp(prefix="bench-startup-"))
        try:
            bare.append(bare_http_server())
            fresh.append(local_cloud(data_dir))
            restart.append(local_cloud(data_dir))
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    base = statistics.median(bare)
    print(f"baseline python -m http.server: {base:.3f} s (median of {args.runs})")
    for name, times in (("local cloud, fresh data dir", fresh),
                        ("local cloud, restart", restart)):
        median = statistics.median(times)
        print(f"{name} ({len(ALL)} clouds): {median:.3f} s, ratio {median / base:.1f}")


if __name__ == "__main__":
    main()
