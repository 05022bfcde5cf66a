"""imagefleet against what an operator would use instead, on the same files in the same run.

Three comparisons, each printing ratios (timings only, no assertions; the
machine may be shared, so the load average is printed before and after):

``upload``: upstream Glance v2 on loopback (``python -m upstream.run start``):
    ``upload_image`` (a child process, so both sides pay their own start-up)
    against the stock ``openstack image create --file`` (openstacksdk), per
    image size.  ratio = imagefleet seconds / openstack seconds (<= 1: no slower).

``publish``: N local-cloud clouds, upload + boot + reach.  ``imagefleet run``
    (which also boots each format locally first, checks checksums and cleans up)
    against a shell loop of stock ``openstack`` commands a careful operator
    would write (image create, security group rule, server create --wait,
    floating ip create/add where the cloud needs one, wait for the SSH banner,
    server delete), one cloud after another and all at once.  ratio =
    imagefleet wall / shell wall.

``bytes``: a build's converted files (``--build-dir work/images/<build id>``
    and the base ``work/builds/<build id>/base.raw``): bytes sent per cloud
    format against the floor, zstd -3 of the base image (free space discarded,
    so zstd of the used blocks).

    .venv/bin/python bench/peers.py [--only upload|publish|bytes]... [--size-mib 64 ...]
        [--clouds dreamhost-like,ovh-like,vexxhost-like] [--work work]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import MiB  # noqa: E402

OPENSTACK = Path(sys.executable).with_name("openstack")
PUBLISH_CLOUDS = ["dreamhost-like", "ovh-like", "vexxhost-like"]
BANNER_TIMEOUT = 600


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def random_image(path: Path, size: int) -> Path:
    """``size`` bytes that do not compress: neither side gains from the content."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
    return path


# -- upload: upstream Glance v2 ---------------------------------------------------------------

def openstack_image_create(clouds_yaml: Path, cloud: str, path: Path, name: str) -> float:
    """Seconds for the stock client's ``image create --file``; the image is deleted after."""
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds_yaml), OS_CLOUD=cloud)
    started = time.perf_counter()
    out = subprocess.run([str(OPENSTACK), "image", "create", "--disk-format", "raw",
                          "--container-format", "bare", "--file", str(path), "-f", "value",
                          "-c", "id", name], env=env, check=True, capture_output=True,
                         text=True).stdout.strip()
    seconds = time.perf_counter() - started
    subprocess.run([str(OPENSTACK), "image", "delete", out], env=env, check=True,
                   capture_output=True)
    return seconds


def imagefleet_upload_child(clouds_yaml: str, cloud_name: str, path: str) -> int:
    """One ``upload_image`` to the upstream cloud; prints its seconds as JSON."""
    from pipeline.cloud.connection import Connection
    from pipeline.cloud.marks import BuildInfo
    from pipeline.cloud.upload import upload_image
    from pipeline.settings.clouds import Cloud, load_clouds
    from pipeline.settings.config import load_profiles
    started = time.perf_counter()
    config = load_clouds(clouds_yaml)[cloud_name]
    profile = load_profiles(REPO / "config" / "vendors")[config.profile_name or "upstream"]
    cloud = Cloud(config=config, profile=profile, disk_format="raw")
    record = upload_image(cloud, path, BuildInfo(f"peers{time.time_ns()}", "sha256:0",
                                                 "imagefleet-peers"), poll_interval=0.2)
    seconds = time.perf_counter() - started
    Connection(cloud).glance.delete(record.image_id)
    print(json.dumps({"seconds": seconds, "mechanism": record.mechanism}))
    return 0


def bench_upload(sizes: list[int], tmp: Path) -> list[dict]:
    from upstream import run as upstream_run
    from upstream.install import CLOUD_NAME
    state = upstream_run.start()
    try:
        return _upload_rows(sizes, tmp, Path(state["clouds_yaml"]), CLOUD_NAME)
    finally:
        if not state.get("reused"):         # ours to stop; a running one stays as found
            upstream_run.stop()


def _upload_rows(sizes: list[int], tmp: Path, clouds_yaml: Path, cloud: str) -> list[dict]:
    print(f"\nupload to upstream Glance v2 ({cloud}); ratio = imagefleet / openstack CLI")
    print(f"{'size MiB':>8} {'openstack s':>11} {'imagefleet s':>12} {'ratio':>6}  mechanism")
    rows = []
    for size_mib in sizes:
        path = random_image(tmp / f"upload-{size_mib}.raw", size_mib * MiB)
        os.sync()
        stock = openstack_image_create(clouds_yaml, cloud, path, f"peers-stock-{size_mib}")
        os.sync()
        out = subprocess.run([sys.executable, __file__, "--upload-child", str(clouds_yaml),
                              cloud, str(path)], check=True, capture_output=True,
                             text=True, cwd=REPO).stdout
        ours = json.loads(out.strip().splitlines()[-1])
        ratio = ours["seconds"] / stock
        rows.append({"size_mib": size_mib, "openstack": stock, "imagefleet": ours["seconds"],
                     "ratio": ratio, "mechanism": ours["mechanism"]})
        print(f"{size_mib:>8} {stock:11.2f} {ours['seconds']:12.2f} {ratio:6.2f}  "
              f"{ours['mechanism']}", flush=True)
        path.unlink()
        Path(str(path) + ".digests.json").unlink(missing_ok=True)
    return rows


# -- publish: N local-cloud clouds -------------------------------------------------------------

def operator_script(cloud: str, network: dict, image: Path, disk_format: str) -> str:
    """The bash a careful operator writes for one cloud (pure; ``network`` is the
    personality's ``network:``): upload, boot, reach, clean up."""
    floating = network.get("external") == "floating"
    net = network.get("tenant_network") or network.get("external_network")
    lines = [
        "set -euo pipefail",
        f"export OS_CLOUD={cloud}",
        f"img=$(openstack image create -f value -c id --disk-format {disk_format} "
        f"--container-format bare --file {image} peers-{cloud})",
    ]
    if network.get("security_groups"):
        lines.append("rule=$(openstack security group rule create -f value -c id --protocol tcp "
                     "--dst-port 22 --remote-ip 127.0.0.0/8 default)")
    lines.append(f"srv=$(openstack server create -f value -c id --image \"$img\" --flavor "
                 f"m1.tiny --network {net} --wait peers-{cloud})")
    if floating:
        lines += [f"ip=$(openstack floating ip create -f value -c floating_ip_address "
                  f"{network['external_network']})",
                  "openstack server add floating ip \"$srv\" \"$ip\""]
    else:
        lines.append("ip=$(openstack server show -f json -c addresses \"$srv\" | python3 -c "
                     "'import json,sys,re; a=json.load(sys.stdin)[\"addresses\"]; "
                     "print(re.findall(r\"\\d+\\.\\d+\\.\\d+\\.\\d+\", json.dumps(a))[0])')")
    lines += [
        f"deadline=$((SECONDS + {BANNER_TIMEOUT}))",
        "until timeout 3 bash -c \"exec 3<>/dev/tcp/$ip/22; head -c 4 <&3 | grep -q SSH\" "
        "2>/dev/null; do",
        "  [ $SECONDS -lt $deadline ] || { echo \"no banner from $ip\" >&2; exit 1; }",
        "  sleep 2",
        "done",
        "openstack server delete --wait \"$srv\"",
    ]
    if floating:
        lines.append("openstack floating ip delete \"$ip\"")
    if network.get("security_groups"):
        lines.append("openstack security group rule delete \"$rule\"")
    return "\n".join(lines) + "\n"


def run_shell(scripts: dict[str, Path], env: dict[str, str], together: bool) -> float:
    """Seconds for the operator's scripts, one after another or all at once."""
    started = time.perf_counter()
    if together:
        procs = [subprocess.Popen(["bash", str(s)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for s in scripts.values()]
        errors = [p.communicate()[1] for p in procs]
        failed = [e for p, e in zip(procs, errors, strict=True) if p.returncode]
    else:
        failed = []
        for script in scripts.values():
            done = subprocess.run(["bash", str(script)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
            if done.returncode:
                failed.append(done.stderr)
    if failed:
        raise RuntimeError("operator script failed: " + failed[0][-500:])
    return time.perf_counter() - started


def bench_publish(names: list[str], tmp: Path) -> dict:
    from localcloud.personality import load as load_personality
    from localcloud.testing import running_cloud
    from pipeline.settings.config import load_profiles
    from tests.pipeline_run import Pipeline, clouds_yaml_for, tiny_source, write_pipeline_yaml
    profiles = load_profiles(REPO / "config" / "vendors")
    source = tmp / "tiny.raw"
    shutil.copyfile(tiny_source(), source)
    with running_cloud(names, tmp / "localcloud") as lc:
        clouds_yaml = clouds_yaml_for(lc, names, tmp / "clouds.yaml")
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds_yaml),
                   PATH=f"{OPENSTACK.parent}:{os.environ['PATH']}")
        scripts = {}
        for name in names:
            fmt = profiles[name].disk_formats[0]
            image = source
            if fmt != "raw":
                image = tmp / f"tiny.{fmt}"
                if not image.exists():
                    subprocess.run(["qemu-img", "convert", "-O", fmt, str(source), str(image)],
                                   check=True)
            path = tmp / f"{name}.sh"
            path.write_text(operator_script(name, load_personality(name).network, image, fmt))
            scripts[name] = path
        sequential = run_shell(scripts, env, together=False)
        together = run_shell(scripts, env, together=True)
        pipeline = Pipeline(write_pipeline_yaml(tmp, source, name="peersfleet"), clouds_yaml,
                            tmp / "work")
        started = time.perf_counter()
        result = pipeline.run("--workers", str(len(names)))
        ours = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"imagefleet run failed: {result.stderr[-500:]}")
    print(f"\npublish to {len(names)} local-cloud clouds ({', '.join(names)}): upload, boot, "
          "reach; ratio = imagefleet / shell loop")
    print(f"{'shell sequential s':>18} {'shell all-at-once s':>19} {'imagefleet run s':>16} "
          f"{'vs seq':>7} {'vs all':>7}")
    print(f"{sequential:18.1f} {together:19.1f} {ours:16.1f} {ours / sequential:7.2f} "
          f"{ours / together:7.2f}")
    print("(imagefleet run also builds from the source, converts, boots every format locally, "
          "checks checksums and applies retention)")
    return {"clouds": names, "shell_sequential": sequential, "shell_together": together,
            "imagefleet": ours}


# -- bytes: what each format ships against the zstd floor --------------------------------------

def bench_bytes(work: Path) -> list[dict]:
    builds = sorted((work / "builds").glob("*/build.json"), key=lambda p: p.stat().st_mtime)
    if not builds:
        print(f"\nbytes: no build under {work}/builds (run `imagefleet build` first)")
        return []
    build_dir = builds[-1].parent
    base = build_dir / "base.raw"
    floor = len(subprocess.run(["zstd", "-3", "-T0", "-c", str(base)], check=True,
                               capture_output=True).stdout)
    space = json.loads(builds[-1].read_text()).get("space") or {}
    print(f"\nbytes per cloud format, build {build_dir.name}; floor = zstd -3 of the base "
          f"image = {floor / MiB:.0f} MiB (filesystem used "
          f"{space.get('fs_used', 0) / MiB:.0f} MiB)")
    print(f"{'format':<7} {'sent MiB':>9} {'allocated MiB':>13} {'x floor':>8}")
    rows = []
    for image in sorted((work / "images" / build_dir.name).glob("image.*")):
        if image.suffix == ".json":
            continue
        fmt = image.name.removeprefix("image.")     # raw.gz: the gzip a raw cloud may get
        sent = image.stat().st_size
        allocated = image.stat().st_blocks * 512
        rows.append({"format": fmt, "sent": sent, "allocated": allocated,
                     "floor": floor, "ratio": sent / floor})
        # raw goes as its apparent size over HTTP; allocated is what Glance stores sparse
        print(f"{fmt:<7} {sent / MiB:9.0f} {allocated / MiB:13.0f} {sent / floor:8.2f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=["upload", "publish", "bytes"])
    parser.add_argument("--size-mib", type=int, action="append",
                        help="upload sizes (repeatable; default 64 256 1024)")
    parser.add_argument("--clouds", default=",".join(PUBLISH_CLOUDS))
    parser.add_argument("--work", default="work", help="work dir holding a build (bytes)")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--upload-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.upload_child:
        return imagefleet_upload_child(*args.upload_child)
    parts = args.only or ["bytes", "upload", "publish"]
    results: dict = {"date": time.strftime("%Y-%m-%d", time.gmtime())}
    print(f"{results['date']}; load average before: {load()} (2 cores, shared)")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        if "bytes" in parts:
            results["bytes"] = bench_bytes(Path(args.work))
        if "upload" in parts:
            results["upload"] = bench_upload(args.size_mib or [64, 256, 1024], tmp)
        if "publish" in parts:
            (tmp / "publish").mkdir()
            results["publish"] = bench_publish(
                [n.strip() for n in args.clouds.split(",") if n.strip()], tmp / "publish")
    print(f"load average after: {load()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
