"""Time our VHD writer against ``qemu-img convert -O vpc`` on the same sparse raw file.

``bench_vhd(src_raw)`` measures both on an existing file; ``main()`` makes a
~1 GiB file, ~30% random 2 MiB blocks and holes elsewhere, in a temp dir.
MB/s are of the source's size (what a user waits on), best of ``repeat`` runs.
Ours is timed twice: as the pipeline runs it (fdatasync before returning) and
without the flush, which is what ``qemu-img convert`` does (it leaves the data
in the page cache), so ``speed_ratio_nosync`` is the like-for-like figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import make_sparse_raw  # noqa: E402
from pipeline.core.runner import run  # noqa: E402
from pipeline.image.vhd import check_vhd, write_vhd  # noqa: E402

MB = 1_000_000


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_vhd(src_raw: str | os.PathLike, repeat: int = 3) -> dict:
    """Best-of-``repeat`` seconds and MB/s for both writers, and ours/qemu's speed ratio."""
    size = os.path.getsize(src_raw)
    with tempfile.TemporaryDirectory(dir=Path(src_raw).parent) as tmp:
        ours_path, qemu_path = Path(tmp, "ours.vhd"), Path(tmp, "qemu.vhd")
        runs: dict[str, list[float]] = {"qemu": [], "ours": [], "ours_nosync": []}
        for _ in range(repeat):
            for name, job in [
                ("qemu", lambda: run(
                    ["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic",
                     str(src_raw), str(qemu_path)], capture=True, timeout=600)),
                ("ours", lambda: write_vhd(src_raw, ours_path)),
                ("ours_nosync", lambda: write_vhd(src_raw, ours_path, sync=False)),
            ]:
                target = qemu_path if name == "qemu" else ours_path
                target.unlink(missing_ok=True)
                os.sync()  # start each run with no dirty pages left by the previous one
                runs[name].append(_timed(job))
        check_vhd(ours_path)
        result: dict = {
            "source_bytes": size,
            "ours_file_bytes": ours_path.stat().st_size,
            "qemu_file_bytes": qemu_path.stat().st_size,
        }
    for name, times in runs.items():
        result[f"{name}_seconds"] = min(times)
        result[f"{name}_mb_s"] = size / MB / min(times)
    result["speed_ratio"] = result["ours_mb_s"] / result["qemu_mb_s"]
    result["speed_ratio_nosync"] = result["ours_nosync_mb_s"] / result["qemu_mb_s"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--data-fraction", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "source.raw")
        make_sparse_raw(src, args.size_mib * 1024 * 1024, args.data_fraction)
        r = bench_vhd(src, args.repeat)
    print(f"vhd writer: {args.size_mib} MiB raw, ~{args.data_fraction:.0%} random 2 MiB blocks, "
          f"best of {args.repeat}")
    for label, key, size_key in [("ours (fdatasync)", "ours", "ours_file_bytes"),
                                 ("ours (no sync)", "ours_nosync", "ours_file_bytes"),
                                 ("qemu-img", "qemu", "qemu_file_bytes")]:
        print(f"  {label:17} {r[key + '_seconds']:7.3f} s  {r[key + '_mb_s']:8.1f} MB/s  "
              f"{r[size_key] / MB:7.1f} MB file")
    print(f"  ratio ours/qemu-img: {r['speed_ratio']:.2f}x with fdatasync, "
          f"{r['speed_ratio_nosync']:.2f}x like-for-like (no sync)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
