"""Upload benchmark: each mechanism against ``curl -T`` of the same file, same endpoint.

A sparse image (4 GiB by default) goes to the local cloud by Glance v1 POST,
Glance v2 PUT, Swift + import task and glance-direct.  For each, in the same
run: ``curl -T`` of the same file to the same endpoint (the image's ``/file``,
``/stage``, the v1 ``images`` collection, the Swift object), then
``upload_image`` in a child process.  Printed: the data transfer's throughput
as a ratio to curl's (target >= 0.8), the end-to-end time (discovery, waits,
import included) and the peak RSS of the uploading process (target < 150 MB).

    .venv/bin/python bench/upload.py [--size-mib 4096] [--runs 1] [--only glance-v2-put]

Runs alternate curl and ours, after a ``sync`` each, so neither inherits the
other's disk writeback; with ``--runs N`` the median of each is used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from localcloud.testing import running_cloud  # noqa: E402
from pipeline.cloud.connection import Connection  # noqa: E402
from pipeline.core.checksums import file_digests  # noqa: E402
from pipeline.settings.clouds import Cloud, load_clouds  # noqa: E402
from pipeline.settings.config import Profile, load_profiles  # noqa: E402

MiB = 1024 * 1024
# mechanism -> (personality, disk format, profile changes)
CASES = {
    "glance-v1-put": ("hp-like", "qcow2", {}),
    "glance-v2-put": ("dreamhost-like", "raw", {}),
    "swift-task-import": ("rackspace-like", "vhd", {}),
    "glance-direct": ("vexxhost-like", "qcow2", {"upload": ["glance-direct"]}),
}


def make_image(path: Path, fmt: str, size: int) -> Path:
    """A sparse image of ``size`` bytes (apparent) in ``fmt``; holes read as zeros."""
    if fmt == "raw":
        with open(path, "wb") as f:
            f.truncate(size)
    elif fmt == "qcow2":
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                        "preallocation=metadata", str(path), str(size)], check=True)
    else:
        subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed",
                        str(path), str(size)], check=True)
    return path


def make_cloud(clouds_yaml: Path, name: str, fmt: str, changes: dict) -> Cloud:
    profile = load_profiles(REPO / "config" / "vendors")[name]
    if changes:
        data = {**profile.data, "image": {**profile.data["image"], **changes}}
        profile = Profile(name=profile.name, data=data, path=profile.path)
    return Cloud(config=load_clouds(clouds_yaml)[name], profile=profile, disk_format=fmt)


def curl(path: Path, url: str, token: str, method: str = "PUT",
         headers: dict[str, str] | None = None) -> float:
    """Seconds for ``curl -T`` of ``path`` to ``url`` (the server's answer included)."""
    argv = ["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{time_total}", "-T", str(path),
            "-X", method, "-H", f"X-Auth-Token: {token}",
            "-H", "Content-Type: application/octet-stream"]
    for key, value in (headers or {}).items():
        argv += ["-H", f"{key}: {value}"]
    out = subprocess.run(argv + [url], check=True, capture_output=True, text=True).stdout
    return float(out)


def curl_baseline(mechanism: str, cloud: Cloud, path: Path) -> float:
    """curl -T to the endpoint ``mechanism`` sends its data to; cleans up after itself."""
    conn = Connection(cloud)
    token = conn.session.get_token()
    api, glance = conn.image_api, conn.glance
    fields = {"name": "bench-curl", "disk_format": cloud.disk_format,
              "container_format": cloud.profile.image.container_format}
    if mechanism == "glance-v1-put":
        headers = {f"x-image-meta-{k}": v for k, v in fields.items()}
        seconds = curl(path, f"{api.endpoint.rstrip('/')}/images", token, "POST", headers)
        for image in glance.find("bench-curl"):
            glance.delete(image.id)
        return seconds
    if mechanism == "swift-task-import":
        swift = conn.object_store
        swift.put("bench-curl")
        url = f"{swift.get_endpoint().rstrip('/')}/bench-curl/disk"
        seconds = curl(path, url, token)
        swift.delete("bench-curl/disk")
        swift.delete("bench-curl")
        return seconds
    image = glance.create_v2(fields, {})
    target = "stage" if mechanism == "glance-direct" else "file"
    seconds = curl(path, f"{api.endpoint.rstrip('/')}/images/{image.id}/{target}", token)
    glance.delete(image.id)
    return seconds


def child(args: argparse.Namespace) -> int:
    """Run one upload_image and print its timings and peak RSS as JSON."""
    from pipeline.cloud import glance as glance_mod
    from pipeline.cloud import staging
    from pipeline.cloud.marks import BuildInfo
    from pipeline.cloud.upload import upload_image

    transfer = [0.0]

    def timed(fn):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                transfer[0] += time.perf_counter() - start
        return wrapper

    glance_mod.Glance._send_data = timed(glance_mod.Glance._send_data)
    staging.SwiftStaging.upload = timed(staging.SwiftStaging.upload)
    personality, fmt, changes = CASES[args.child]
    cloud = make_cloud(Path(args.clouds_yaml), personality, fmt, changes)
    start = time.perf_counter()
    record = upload_image(cloud, args.image, BuildInfo(f"bench{int(time.time())}", "sha256:0",
                                                       "imagefleet-bench"), poll_interval=0.2)
    total = time.perf_counter() - start
    Connection(cloud).glance.delete(record.image_id)
    print(json.dumps({"transfer": transfer[0], "total": total, "bytes": record.bytes,
                      "mechanism": record.mechanism,
                      "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", action="append", choices=sorted(CASES))
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--clouds-yaml", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    size = args.size_mib * MiB
    cases = args.only or list(CASES)
    worst = 1e9
    peak = 0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        personalities = sorted({CASES[c][0] for c in cases})
        with running_cloud(personalities, tmp / "localcloud") as lc:
            print(f"image: {args.size_mib} MiB sparse, local cloud {', '.join(personalities)}")
            print(f"{'mechanism':<20} {'curl s':>8} {'ours s':>8} {'MiB/s':>8} {'ratio':>6} "
                  f"{'total s':>8} {'RSS MB':>7}")
            for mechanism in cases:
                personality, fmt, changes = CASES[mechanism]
                image = make_image(tmp / f"disk.{fmt}", fmt, size)
                file_digests(image)          # once, cached beside the file, as in a real run
                actual = image.stat().st_size
                cloud = make_cloud(lc.clouds_yaml, personality, fmt, changes)
                curls, results = [], []
                for _ in range(args.runs):
                    os.sync()
                    curls.append(curl_baseline(mechanism, cloud, image))
                    os.sync()
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", mechanism, "--clouds-yaml",
                         str(lc.clouds_yaml), "--image", str(image)],
                        check=True, capture_output=True, text=True).stdout
                    results.append(json.loads(out.strip().splitlines()[-1]))
                curl_s = statistics.median(curls)
                result = {key: statistics.median(r[key] for r in results)
                          for key in ("transfer", "total", "rss_kib")}
                ratio = curl_s / result["transfer"]
                rss_mb = result["rss_kib"] * 1024 / 1e6
                worst, peak = min(worst, ratio), max(peak, rss_mb)
                print(f"{mechanism:<20} {curl_s:8.2f} {result['transfer']:8.2f} "
                      f"{actual / MiB / result['transfer']:8.1f} {ratio:6.2f} "
                      f"{result['total']:8.2f} {rss_mb:7.1f}", flush=True)
                image.unlink()
                Path(str(image) + ".digests.json").unlink(missing_ok=True)
    verdict = "ok" if worst >= 0.8 and peak < 150 else "BELOW TARGET"
    print(f"worst ratio {worst:.2f} (target >= 0.8), peak RSS {peak:.1f} MB (target < 150): "
          f"{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
