"""Local boots on every kind of host this project meets, each simulated in this run.

- no ``/dev/kvm``: a private mount namespace whose ``/dev`` is a fresh tmpfs
  holding only the usual character devices;
- a ``/dev/kvm`` that fails to initialise: the same, with ``/dev/null``'s
  device numbers under the name ``kvm`` (as if ``/dev/null`` were bind-mounted
  over it);
- a "KVM" that starts and then makes no progress: a ``qemu-system-x86_64``
  stand-in first on PATH that runs the real qemu paused (``-S``) whenever it
  is asked for KVM, in auto mode, forced, and behind a cached "kvm".

Each boots the tiny image through ``LocalBoot``'s own function and must reach
its SSH banner, and no boot may wait longer than the no-progress bound before
it falls back.  The local cloud's guests get the same decision and fallback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from localcloud.testing import running_cloud
from qemuhost import accel
from tests.localcloud.cloudops import create_server, knock, nova, upload_image, wait_status
from tests.localcloud.conftest import make_session
from tests.localcloud.tinyimage import BANNER, tiny_image

REPO = Path(__file__).resolve().parents[2]
STALL = 6.0              # the no-progress bound these tests set
SLACK = 6.0              # one banner attempt (5 s) plus scheduling
BOOT_TIMEOUT = 180

pytestmark = [pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="no qemu"),
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                 reason="needs root and unshare for a private /dev")]

DRIVER = """
import json, sys, time
from pipeline.cloud.localboot import local_boot
image, work, setting, stall = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
began = time.monotonic()
record = local_boot(image, "raw", "x", work_dir=work, timeout=float(sys.argv[5]),
                    login=False,
                    accel_setting=setting, stall_timeout=stall)
record["wall_seconds"] = round(time.monotonic() - began, 1)
print(json.dumps(record))
"""

# A /dev with only what qemu and Python need, and optionally a broken "kvm".
PRIVATE_DEV = """
set -e
mount --make-rprivate /
mount -t tmpfs -o mode=755 imagefleet-dev /dev
for spec in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read name major minor <<EOF2
$spec
EOF2
  mknod -m 666 /dev/$name c $major $minor
done
mkdir /dev/shm /dev/pts && mount -t tmpfs tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd
if [ "$BROKEN_KVM" = 1 ]; then mknod -m 666 /dev/kvm c 1 3; fi
exec "$@"
"""

STAND_IN = """#!/bin/bash
# qemu-system-x86_64 stand-in: asked for KVM, it starts the real qemu paused (-S),
# so the guest never runs: a KVM that starts and then makes no progress.
args=(); kvm=0
while [ $# -gt 0 ]; do
  case "$1" in
    -accel) if [ "$2" = kvm ]; then kvm=1; args+=(-accel tcg); else args+=(-accel "$2"); fi
            shift 2;;
    -cpu) [ "$2" = host ] || args+=(-cpu "$2"); shift 2;;
    *) args+=("$1"); shift;;
  esac
done
[ $kvm = 1 ] && args+=(-S)
exec @REAL@ "${args[@]}"
"""


def write_stand_in(directory: Path) -> Path:
    """A directory holding the paused-KVM ``qemu-system-x86_64``, to put first on PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "qemu-system-x86_64"
    script.write_text(STAND_IN.replace("@REAL@", shutil.which("qemu-system-x86_64")))
    script.chmod(0o755)
    return directory


def boot(image: Path, work: Path, setting: str = "auto", *, private_dev: bool = False,
         broken_kvm: bool = False, stand_in: Path | None = None) -> dict:
    """One local boot in a process of its own, in the simulated host; its record."""
    argv = [sys.executable, "-c", DRIVER, str(image), str(work), setting, str(STALL),
            str(BOOT_TIMEOUT)]
    if private_dev:
        argv = ["unshare", "-m", "--", "bash", "-c", PRIVATE_DEV, "private-dev", *argv]
    env = dict(os.environ, BROKEN_KVM="1" if broken_kvm else "0",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")])))
    if stand_in is not None:
        env["PATH"] = f"{stand_in}{os.pathsep}{env['PATH']}"
    env.pop(accel.ENV, None)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=BOOT_TIMEOUT + 120, check=False)
    if done.returncode != 0:
        raise AssertionError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def cached_kvm_then_again(image: Path, work: Path, stand_in: Path) -> tuple[dict, dict, dict]:
    """A cache that says "kvm" on a host whose KVM stalls: the boot, the cache after, the next."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "accel.json").write_text(json.dumps({accel.host_key(): {
        "accel": "kvm", "why": "an earlier probe", "source": "probe",
        "kvm_seconds": 0.05, "tcg_seconds": 0.4}}))
    first = boot(image, work, stand_in=stand_in)
    cache = json.loads((work / "accel.json").read_text())
    return first, cache, boot(image, work, stand_in=stand_in)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory) -> dict:
    """Every simulated host's boots, two at a time (one TCG guest per core)."""
    image = tiny_image("raw")
    root = tmp_path_factory.mktemp("accel-hosts")
    stand_in = write_stand_in(root / "bin")
    runs = {
        "no-kvm": lambda: boot(image, root / "no-kvm", private_dev=True),
        "broken-kvm": lambda: boot(image, root / "broken-kvm", private_dev=True,
                                   broken_kvm=True),
        "stalling-auto": lambda: boot(image, root / "stalling-auto", stand_in=stand_in),
        "stalling-forced": lambda: boot(image, root / "stalling-forced", "kvm",
                                        stand_in=stand_in),
        "stalling-cached": lambda: cached_kvm_then_again(image, root / "stalling-cached",
                                                         stand_in),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run) for name, run in runs.items()}
        for future in futures.values():
            future.exception()            # wait for every host
    return {**futures, "root": root}


def test_no_dev_kvm_boots_under_tcg(hosts):
    record = hosts["no-kvm"].result()
    assert record["accel"] == "tcg" and "/dev/kvm missing" in record["accel_why"]
    assert record["accel_fallback"] is None
    assert record["banner"] == BANNER.decode()


def test_dev_kvm_that_fails_to_initialise_boots_under_tcg(hosts):
    record = hosts["broken-kvm"].result()
    assert record["accel"] == "tcg" and record["accel_why"].startswith("KVM: qemu exited")
    assert record["accel_fallback"] is None
    assert record["banner"] == BANNER.decode()


def test_kvm_that_makes_no_progress_fails_the_probe_within_its_bound(hosts):
    record = hosts["stalling-auto"].result()
    assert record["accel"] == "tcg" and "made no progress" in record["accel_why"]
    assert record["accel_fallback"] is None
    assert record["banner"] == BANNER.decode()


def test_forced_kvm_that_stalls_is_stopped_and_booted_under_tcg(hosts):
    record = hosts["stalling-forced"].result()
    fallback = record["accel_fallback"]
    assert record["accel"] == "tcg" and fallback["from"] == "kvm"
    assert "nothing past the boot loader" in fallback["why"]
    assert STALL <= fallback["seconds_lost"] <= STALL + SLACK
    assert record["banner"] == BANNER.decode()
    assert not (hosts["root"] / "stalling-forced" / "accel.json").exists()  # not a finding


def test_cached_kvm_that_stalls_is_dropped_and_probed_again(hosts):
    record, cache, again = hosts["stalling-cached"].result()
    assert record["accel_fallback"]["seconds_lost"] <= STALL + SLACK
    assert record["accel"] == "tcg" and record["banner"] == BANNER.decode()
    assert cache[accel.host_key()]["accel"] == "tcg"
    assert again["accel"] == "tcg" and again["accel_fallback"] is None   # straight to TCG


def test_local_cloud_guest_falls_back_from_a_stalled_kvm(tmp_path, monkeypatch):
    stand_in = write_stand_in(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{stand_in}{os.pathsep}{os.environ['PATH']}")
    with running_cloud(["ovh-like"], tmp_path / "lc",
                       extra_args=["--accel", "kvm", "--stall-timeout", str(STALL)]) as lc:
        sess = make_session(lc, "ovh-like")
        image_id = upload_image(lc, sess, "ovh-like", tiny_image("qcow2"))
        compute = nova(sess, lc, "ovh-like")
        server = create_server(compute, image_id, name="stalled-kvm")
        wait_status(compute, server["id"], "ACTIVE")
        began = time.monotonic()
        deadline = began + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            guests = {g["server_id"]: g for g in lc.admin("GET", "/admin/guests")["guests"]}
            guest = guests.get(server["id"])
            if guest and guest["accel"] == "tcg" and knock("127.0.0.1", guest["ssh_port"],
                                                            1.0) == "banner":
                break
            time.sleep(1.0)
        else:
            pytest.fail(f"no banner from the guest after a fallback: {guests}")
        assert "KVM boot failed after" in guest["fallback"]
        assert "booted again under TCG" in guest["fallback"]
        compute.delete(f"/servers/{server['id']}")
