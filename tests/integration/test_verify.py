"""verify_image against the local cloud: each vendor's path in, each fault, and nothing left.

The tiny image (a busybox guest that answers on port 22 with an SSH banner)
keeps these quick: its check stops at the banner (``login=False``).  The
``slow`` tests boot the real base image on every cloud and log in to read its
build id.  What is checked is what a user would: the record says how the
server was reached, the error says why not, and the local cloud's resource
list shows no server, keypair, floating IP, group or rule left behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import luigi
import luigi.configuration
import pytest
import yaml

from pipeline.cloud import cleanup
from pipeline.cloud.localboot import local_boot
from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.upload import upload_image
from pipeline.cloud.verify import verify_image
from pipeline.core import errors
from pipeline.image.convert import convert_image
from pipeline.settings.clouds import load_clouds, select_clouds
from pipeline.settings.config import load_pipeline, load_profiles
from tests.conftest import REPO, cloud_entry, write_clouds_yaml
from tests.localcloud import tinyimage
from tests.pipeline_run import local_cloud

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.usefixtures("no_faults_left")]
SHAPES = ["rackspace-like", "hp-like", "dreamhost-like", "vexxhost-like", "ovh-like",
          "auro-like"]
PATH_IN = {"rackspace-like": "public-network", "hp-like": "neutron-floating-ip-created",
           "dreamhost-like": "neutron-floating-ip-created",
           "vexxhost-like": "external-network-port", "ovh-like": "routable-address",
           "auro-like": "nova-network-floating-ip-created"}
TINY_TIMEOUT = 180            # TCG; the tiny guest answers in about 10 s
BROKEN_TIMEOUT = 25           # long enough for the broken guest to finish booting
REAL_TIMEOUT = 900
TINY = BuildInfo(build_id="tinyverify", digest="sha256:" + "ab" * 32, image_name="tiny")
BROKEN = BuildInfo(build_id="nosshd", digest="sha256:" + "ef" * 32, image_name="tiny")
# The local cloud checks security-group rules against the guest's port 22 whatever
# port it forwards (--ssh-port), so the check port must be 22 too.
SSH_PORT = 22


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    yield from local_cloud(tmp_path_factory, SHAPES,
                           extra_args=["--max-boots", "2", "--ssh-port", str(SSH_PORT)])


@pytest.fixture(scope="module")
def clouds_yaml(lc, tmp_path_factory):
    """The local cloud's clouds.yaml, with the check port its forwarder listens on."""
    data = yaml.safe_load(lc.clouds_yaml.read_text())
    for entry in data["clouds"].values():
        entry["imagefleet"]["overrides"]["network"]["check_port"] = SSH_PORT
    path = tmp_path_factory.mktemp("clouds") / "clouds.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def clouds(clouds_yaml):
    config = load_pipeline(REPO / "config" / "pipeline.yaml")
    profiles = load_profiles(config.vendors_dir)
    return {c.name: c for c in select_clouds(config, profiles, load_clouds(clouds_yaml),
                                             only=SHAPES)}


def upload(cloud, path: Path, build: BuildInfo) -> str:
    return upload_image(cloud, path, build, poll_interval=0.2).image_id


@pytest.fixture(scope="module")
def tiny(clouds):
    """The tiny image uploaded to every cloud in its format: cloud -> image id."""
    return {name: upload(c, tinyimage.tiny_image(c.disk_format), TINY)
            for name, c in clouds.items()}


@pytest.fixture(scope="module")
def no_sshd(tmp_path_factory):
    """The tiny image without its port-22 responder: it boots, nothing answers."""
    original = tinyimage.INIT
    tinyimage.INIT = original.replace("nc -ll -p 22 -e /bin/banner &\n", "")
    try:
        assert tinyimage.INIT != original
        return tinyimage.build_raw(tmp_path_factory.mktemp("broken") / "no-sshd.raw")
    finally:
        tinyimage.INIT = original


def leaked(lc, cloud: str) -> dict:
    """What the cloud holds besides our uploaded images."""
    return {k: v for k, v in lc.leftovers(cloud).items() if k != "images"}


def convert(path: Path, disk_format: str, tmp_path: Path) -> Path:
    if disk_format == "raw":
        return path
    dest = tmp_path / f"{path.stem}.{disk_format}"
    convert_image(path, dest, disk_format)
    return dest


def fast_verify(cloud, image_id, tmp_path, **kwargs):
    options = {"boot_timeout": TINY_TIMEOUT, "poll": 0.5, "login": False, **kwargs}
    return verify_image(cloud, image_id, TINY, work_dir=tmp_path, **options)


@pytest.mark.parametrize("name", SHAPES)
def test_each_cloud_is_reached_by_its_own_path(name, clouds, tiny, lc, tmp_path):
    record = fast_verify(clouds[name], tiny[name], tmp_path)
    print(f"\n{name}: {record.address} by {record.address_source}; ACTIVE after "
          f"{record.seconds_to_active} s, banner after {record.seconds_to_reachable} s")
    assert record.verified and record.banner == tinyimage.BANNER.decode()
    assert record.address_source == PATH_IN[name]
    assert record.address.startswith("127.") and record.server_id
    assert 0 < record.seconds_to_active <= record.seconds_to_reachable < TINY_TIMEOUT
    if clouds[name].profile.network.security_groups:
        assert record.check_cidr == "127.0.0.1/32" and record.check_port == SSH_PORT
    assert json.loads(json.dumps(record.to_dict()))["server_id"] == record.server_id
    assert leaked(lc, name) == {}
    assert not list((tmp_path / "journal").glob("*.json"))


def test_an_image_without_sshd_fails_in_the_boot_timeout_and_leaves_nothing(
        clouds, lc, no_sshd, tmp_path):
    cloud = clouds["hp-like"]
    image_id = upload(cloud, convert(no_sshd, "qcow2", tmp_path), BROKEN)
    began = time.monotonic()
    with pytest.raises(errors.ReachabilityError) as caught:
        fast_verify(cloud, image_id, tmp_path, boot_timeout=BROKEN_TIMEOUT)
    assert time.monotonic() - began < BROKEN_TIMEOUT + 60     # stopped, not hung
    message = str(caught.value)
    assert re.match(r"hp-like: reach: 127\.\d+\.\d+\.\d+:22: no SSH banner within 2\d(\.\d)? s",
                    message), message
    # the console's tail is in the line (how far the guest got depends on the load)
    assert "; console: " in message, message
    assert leaked(lc, "hp-like") == {}


def test_local_boot_stops_the_same_image_before_any_upload(no_sshd, tmp_path):
    began = time.monotonic()
    with pytest.raises(errors.ReachabilityError, match="no SSH banner within 20 s") as caught:
        local_boot(no_sshd, "raw", "x", work_dir=tmp_path, timeout=20, login=False)
    assert time.monotonic() - began < 80                       # stopped, not hung
    assert str(caught.value).startswith("local raw: reach: 127.0.0.1:")
    console = re.search(r"; console: .*; log: (\S+)$", str(caught.value))
    assert console and Path(console.group(1)).is_file(), str(caught.value)
    assert not list(tmp_path.glob("*.iso")) and not list(tmp_path.glob("*overlay*"))


def test_local_boot_passes_a_good_image(tmp_path):
    result = local_boot(tinyimage.tiny_image("qcow2"), "qcow2", "x", work_dir=tmp_path,
                        timeout=TINY_TIMEOUT, login=False)
    assert result["verified"] and result["banner"] == tinyimage.BANNER.decode()
    assert 0 < result["seconds_to_banner"] < TINY_TIMEOUT


@pytest.fixture
def luigi_cfg():
    """Set luigi configuration for one test; the previous values come back afterwards."""
    cfg = luigi.configuration.get_config()
    saved = []

    def put(section, key, value):
        had = cfg.has_option(section, key)
        saved.append((section, key, cfg.get(section, key) if had else None))
        cfg.set(section, key, value)
    yield put
    for section, key, value in reversed(saved):
        if value is None:
            cfg.remove_option(section, key)
        else:
            cfg.set(section, key, value)


def test_the_local_boot_task_fails_with_one_line_and_no_output(no_sshd, tmp_path, luigi_cfg):
    from tasks.localboot import LocalBoot
    luigi_cfg("imagefleet", "work_dir", str(tmp_path / "work"))
    luigi_cfg("localboot", "timeout", "20")
    task = LocalBoot(digest="f" * 64, disk_format="raw")
    converted = Path(task.input().path)
    converted.parent.mkdir(parents=True)
    converted.symlink_to(no_sshd)
    # the conversion's record says how the file was written (ConvertImage.complete)
    task.layout.convert_record(task.build_id, "raw").write_text('{"compressed": false}')
    assert not luigi.build([task], local_scheduler=True, workers=1)
    assert not task.complete()
    (failure,) = (tmp_path / "work" / "failures").glob("*.json")
    line = json.loads(failure.read_text())["error"]
    assert line.startswith("local raw: reach: 127.0.0.1:") and "\n" not in line


def test_a_cloud_without_compute_is_recorded_as_not_verified(tmp_path, luigi_cfg):
    from tasks.verify import VerifyImage
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"up": cloud_entry("upstream")})
    luigi_cfg("imagefleet", "work_dir", str(tmp_path / "work"))
    luigi_cfg("imagefleet", "clouds_yaml", str(clouds))
    luigi_cfg("imagefleet", "config", str(REPO / "config" / "pipeline.yaml"))
    task = VerifyImage(digest="e" * 64, cloud="up")
    uploaded = Path(task.input().path)
    uploaded.parent.mkdir(parents=True)
    uploaded.write_text(json.dumps({"image_id": "img-1"}))
    assert luigi.build([task], local_scheduler=True, workers=1)
    with task.output().open("r") as f:
        record = json.load(f)
    assert record["verified"] is False and record["reason"] == "no compute"
    assert record["image_id"] == "img-1" and record["server_id"] is None


def test_upload_waits_for_the_local_boot(clouds_yaml, tmp_path, luigi_cfg):
    from tasks.localboot import LocalBoot
    from tasks.upload import UploadImage
    luigi_cfg("imagefleet", "work_dir", str(tmp_path / "work"))
    luigi_cfg("imagefleet", "clouds_yaml", str(clouds_yaml))
    luigi_cfg("imagefleet", "config", str(REPO / "config" / "pipeline.yaml"))
    required = luigi.task.flatten(UploadImage(digest="f" * 64, cloud="hp-like").requires())
    assert LocalBoot(digest="f" * 64, disk_format="qcow2") in required


# --- faults --------------------------------------------------------------------------


def test_a_server_in_error_fails_with_novas_fault(clouds, tiny, lc, tmp_path):
    lc.add_fault("dreamhost-like", kind="server_error", message="No valid host was found.")
    with pytest.raises(errors.BootError, match="went to ERROR: No valid host was found"):
        fast_verify(clouds["dreamhost-like"], tiny["dreamhost-like"], tmp_path)
    assert leaked(lc, "dreamhost-like") == {}


@pytest.mark.parametrize("name", ["hp-like", "auro-like"])       # neutron, nova-network
def test_floating_ip_quota_exhausted(name, clouds, tiny, lc, tmp_path):
    lc.add_fault(name, kind="quota_exceeded", resource="floating_ips")
    with pytest.raises(errors.QuotaExceeded, match=rf"^{name}: verify: .*(?i:quota)"):
        fast_verify(clouds[name], tiny[name], tmp_path)
    assert leaked(lc, name) == {}


def test_a_boot_slower_than_the_timeout(clouds, tiny, lc, tmp_path):
    lc.add_fault("ovh-like", kind="slow_build", seconds=20)
    began = time.monotonic()
    with pytest.raises(errors.BootError, match="was still BUILD after 5 s"):
        fast_verify(clouds["ovh-like"], tiny["ovh-like"], tmp_path, boot_timeout=5)
    assert time.monotonic() - began < 20
    assert leaked(lc, "ovh-like") == {}


def test_a_guest_that_never_answers(clouds, tiny, lc, tmp_path):
    lc.add_fault("vexxhost-like", kind="no_answer")
    with pytest.raises(errors.ReachabilityError, match="TCP connected but no SSH banner"):
        fast_verify(clouds["vexxhost-like"], tiny["vexxhost-like"], tmp_path, boot_timeout=15)
    assert leaked(lc, "vexxhost-like") == {}


# --- a verify killed mid-way, then the sweeper -----------------------------------------

DRIVER = """
import sys
from pipeline.settings.clouds import load_clouds, select_clouds
from pipeline.settings.config import load_pipeline, load_profiles
from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.verify import verify_image
config = load_pipeline(sys.argv[1])
(cloud,) = select_clouds(config, load_profiles(config.vendors_dir), load_clouds(sys.argv[2]),
                         only=[sys.argv[3]])
verify_image(cloud, sys.argv[4], BuildInfo("killed", "sha256:00", "tiny"),
             work_dir=sys.argv[5], login=False, boot_timeout=600)
"""


@pytest.mark.parametrize("name", ["hp-like", "auro-like"])
def test_sigkill_mid_verify_then_cleanup_leaves_nothing(name, clouds, clouds_yaml, tiny, lc,
                                                         tmp_path):
    work = tmp_path / "work"
    lc.add_fault(name, kind="no_answer")          # the check waits: time to kill it
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(REPO / "config" / "pipeline.yaml"),
         str(clouds_yaml), name, tiny[name], str(work)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while not {"servers", "floating_ips", "security_group_rules"} <= set(leaked(lc, name)):
            assert driver.poll() is None, "the driver ended before it could be killed"
            assert time.monotonic() < deadline, leaked(lc, name)
            time.sleep(0.2)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert leaked(lc, name), "the kill should have left something"
    swept = subprocess.run(
        [sys.executable, "-m", "tasks.cli", "cleanup", "--cloud", name, "--clouds-yaml",
         str(clouds_yaml), "--work-dir", str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert swept.returncode == 0, swept.stderr
    for kind in ("servers", "floating_ips", "security_groups", "keypairs"):
        assert kind in swept.stdout, swept.stdout
    assert leaked(lc, name) == {}
    assert not list((work / "journal").glob("*.json"))
    assert cleanup.sweep(clouds[name], journal_dir=work / "journal", poll=0.5) == {}


# --- the real base image, booted on every cloud -----------------------------------------


# The tiny image above covers every network path on every personality; the real
# image (50-150 s to log in under TCG) boots on two clouds at once, one round: the
# VHD with static networking from the config drive on a public IP (rackspace-like)
# and the qcow2 behind a neutron floating IP (hp-like), with no config drive: its
# key comes from the metadata service.  The raw base image
# passes LocalBoot in tests/e2e/test_local_boot.py.
REAL_SHAPES = ["rackspace-like", "hp-like"]


@pytest.fixture(scope="module")
def real_results(clouds, lc, tmp_path_factory, base_image):
    """Every cloud verifies the real image (this session's build and conversions, by the
    real CLI: tests/built_image.py); two at a time (two cores, TCG)."""
    build_id = base_image.build_id
    build = BuildInfo(build_id=build_id, digest="sha256:" + "cd" * 32, image_name="base")
    work = tmp_path_factory.mktemp("real")
    images = {n: upload(clouds[n], base_image.images[clouds[n].disk_format], build)
              for n in REAL_SHAPES}

    def one(name):
        try:
            return verify_image(clouds[name], images[name], build, work_dir=work / name,
                                boot_timeout=REAL_TIMEOUT, min_disk_gb=2, poll=1.0)
        except errors.PipelineError as e:
            return e
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(REAL_SHAPES, pool.map(one, REAL_SHAPES), strict=True))
    return build_id, results


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_SHAPES)
def test_the_real_image_is_verified_on_every_cloud(name, real_results, clouds, lc):
    build_id, results = real_results
    record = results[name]
    assert not isinstance(record, Exception), str(record)
    print(f"\n{name}: {record.address} by {record.address_source}; ACTIVE after "
          f"{record.seconds_to_active} s, logged in after {record.seconds_to_reachable} s")
    assert record.verified and record.build_id == build_id
    assert record.address_source == PATH_IN[name]
    assert record.host_key.startswith("ssh-ed25519 ")
    assert record.flavor == "m1.small"                 # the smallest with a 2 GB disk
    assert leaked(lc, name) == {}
    # hp-like asks for no config drive: the login key came from the metadata service,
    # which the image's cloud-init read (OpenStack datasource); rackspace-like has none.
    drive = clouds[name].profile.compute.config_drive
    assert drive is (name == "rackspace-like")
    fetched = lc.admin("GET", "/admin/guests")["metadata_requests"].get(record.server_id, [])
    meta_data = [p for p in fetched if p.startswith("/openstack/") and
                 p.endswith("/meta_data.json")]
    assert bool(meta_data) is not drive, fetched
