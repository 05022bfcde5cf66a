"""Conversion benchmark: our wrapper against bare qemu-img in the same run.

Prints wall time and throughput for each format through ``pipeline.image.qemu_img``
and through a bare ``qemu-img convert`` of the same file with the same
arguments (target ratio <= 1.05), plus qemu-img with its default arguments,
and the VHD writer against ``qemu-img convert -O vpc``.

    .venv/bin/python bench/convert.py [--size-mib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MiB, best_of, make_sparse_raw, row  # noqa: E402
from bench.vhd_writer import bench_vhd  # noqa: E402
from pipeline.image import qemu_img  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args(argv)
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        src = make_sparse_raw(tmp / "src.raw", size)
        print(f"source: {args.size_mib} MiB raw, ~30% data, median of {args.runs} runs")
        os.sync()  # the source's own writeback must not land in the first timing
        for fmt in ("qcow2", "raw"):
            dest = tmp / f"out.{fmt}"
            argv = qemu_img.convert_argv(src, "raw", dest, fmt, progress=True)
            variants = {
                "bare": lambda argv=argv: subprocess.run(argv, check=True,
                                                         stdout=subprocess.DEVNULL),
                "default": lambda dest=dest, fmt=fmt: subprocess.run(
                    ["qemu-img", "convert", "-f", "raw", "-O", fmt, str(src), str(dest)],
                    check=True),
                "wrapped": lambda dest=dest, fmt=fmt: qemu_img.convert(
                    src, "raw", dest, fmt, progress=lambda pct: None),
            }
            times: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.runs):  # interleaved, so drift hits every variant alike
                for name, fn in variants.items():
                    dest.unlink(missing_ok=True)
                    os.sync()
                    times[name].append(best_of(1, fn))
            bare, default, wrapped = (statistics.median(times[n]) for n in variants)
            print(row(f"{fmt}: bare qemu-img (same args)", bare, size))
            print(row(f"{fmt}: bare qemu-img (default args)", default, size, bare))
            print(row(f"{fmt}: pipeline.image.qemu_img.convert", wrapped, size, bare))
        r = bench_vhd(src, args.runs)
        print(row("vhd: qemu-img convert -O vpc", r["qemu_seconds"], size))
        print(row("vhd: pipeline.image.vhd.write_vhd (fdatasync)", r["ours_seconds"], size,
                  r["qemu_seconds"]))
        print(row("vhd: pipeline.image.vhd.write_vhd (no sync)", r["ours_nosync_seconds"], size,
                  r["qemu_seconds"]))
        print(f"vhd writer throughput as a ratio to qemu-img -O vpc: {r['speed_ratio']:.2f} "
              f"(with fdatasync), {r['speed_ratio_nosync']:.2f} (like for like)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
