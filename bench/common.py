"""Helpers shared by the benchmarks: test files, timing, printing."""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

MiB = 1024 * 1024


def make_sparse_raw(path: Path, size: int, data_fraction: float = 0.3,
                    block: int = 2 * MiB, seed: int = 7) -> Path:
    """A raw file of ``size`` bytes with random data in ``data_fraction`` of its blocks."""
    rng = random.Random(seed)
    chunk = os.urandom(block)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset in range(0, size, block):
            if rng.random() < data_fraction:
                f.seek(offset)
                f.write(chunk[: min(block, size - offset)])
    return path


def best_of(n: int, fn: Callable[[], None], before: Callable[[], None] | None = None) -> float:
    """Median wall time of ``n`` runs of ``fn`` (``before`` runs untimed first)."""
    times = []
    for _ in range(n):
        if before:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(name: str, seconds: float, size: int, baseline: float | None = None) -> str:
    rate = size / MiB / seconds if seconds else float("inf")
    ratio = f"  ratio {seconds / baseline:5.3f}" if baseline else ""
    return f"{name:<44} {seconds:8.2f} s {rate:9.1f} MiB/s{ratio}"
