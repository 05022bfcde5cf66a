"""verify_image on a cloud whose flavors all have zero disk, and the cloud-only check.

The local cloud serves ovh-like with Cinder and zero-disk flavors
(``tests/localcloud/cloudops.zero_disk_personality``): Nova refuses an
image-backed server there, so the test boot makes a volume from the image,
boots it with ``block_device_mapping_v2`` and deletes both. One real TCG boot
of the tiny image (from its volume); everything else runs against servers that
go ACTIVE without a guest (the ``no_answer`` fault). ``zd-private`` is the same
cloud seen from a host that reaches none of its addresses (a private cloud
behind a firewall): ``cloud-only`` passes there, ``ssh-banner`` cannot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from pipeline.cloud import cleanup
from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.upload import upload_image
from pipeline.cloud.verify import verify_image
from pipeline.core import errors
from pipeline.settings.clouds import load_clouds, select_clouds
from pipeline.settings.config import load_pipeline, load_profiles
from tests.conftest import REPO
from tests.localcloud import tinyimage
from tests.localcloud.cloudops import zero_disk_personality
from tests.pipeline_run import local_cloud

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.usefixtures("no_faults_left")]
PERSONALITY = "ovh-like"
TINY = BuildInfo(build_id="tinyvolume", digest="sha256:" + "ab" * 32, image_name="tiny")
# each test uploading an image of its own does so as a build of its own (an upload
# replaces what the same build left in the cloud)
BIG = BuildInfo(build_id="bigvolume", digest="sha256:" + "cd" * 32, image_name="big")
PRIVATE = BuildInfo(build_id="tinyprivate", digest="sha256:" + "ef" * 32, image_name="tiny")
TINY_TIMEOUT = 180            # TCG; the tiny guest answers in about 10 s
SSH_PORT = 22                 # the forwarder's port (--ssh-port), as in test_verify.py
TARGETS = {"zd": {}, "zd-private": {"network": {"routable_cidrs": ["10.255.0.0/16"]}},
           "zd-never": {"compute": {"boot_from_volume": "never"}}}


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    d = tmp_path_factory.mktemp("zerodisk-personality")
    yield from local_cloud(tmp_path_factory, [zero_disk_personality(d, PERSONALITY)],
                           extra_args=["--max-boots", "1", "--ssh-port", str(SSH_PORT)])


@pytest.fixture(scope="module")
def clouds_yaml(lc, tmp_path_factory):
    """One entry per way of seeing the cloud (TARGETS), each with its profile overrides."""
    entry = yaml.safe_load(lc.clouds_yaml.read_text())["clouds"][PERSONALITY]
    entries = {}
    for name, overrides in TARGETS.items():
        copy = yaml.safe_load(yaml.safe_dump(entry))
        merged = copy["imagefleet"]["overrides"]
        merged["network"]["check_port"] = SSH_PORT
        merged["network"].update(overrides.get("network", {}))
        merged.update({k: v for k, v in overrides.items() if k != "network"})
        entries[name] = copy
    path = tmp_path_factory.mktemp("clouds") / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": entries}))
    return path


@pytest.fixture(scope="module")
def clouds(clouds_yaml):
    config = load_pipeline(REPO / "config" / "pipeline.yaml")
    return {c.name: c for c in select_clouds(config, load_profiles(config.vendors_dir),
                                             load_clouds(clouds_yaml), only=list(TARGETS))}


@pytest.fixture(scope="module")
def image_id(clouds):
    cloud = clouds["zd"]
    return upload_image(cloud, tinyimage.tiny_image(cloud.disk_format), TINY,
                        poll_interval=0.2).image_id


def leaked(lc) -> dict:
    return {k: v for k, v in lc.leftovers(PERSONALITY).items() if k != "images"}


def verify(cloud, image_id, tmp_path, **kwargs):
    options = {"boot_timeout": TINY_TIMEOUT, "poll": 0.5, "check": "ssh-banner", **kwargs}
    return verify_image(cloud, image_id, TINY, work_dir=tmp_path, **options)


def test_the_test_boot_boots_from_a_volume_made_from_the_image(clouds, image_id, lc,
                                                                tmp_path):
    record = verify(clouds["zd"], image_id, tmp_path)
    print(f"\nvolume {record.volume_gb} GiB available after {record.seconds_to_volume} s; "
          f"ACTIVE after {record.seconds_to_active} s, banner after "
          f"{record.seconds_to_reachable} s")
    assert record.verified and record.banner == tinyimage.BANNER.decode()
    assert record.boot_volume and record.volume_gb == 1 and record.check == "ssh-banner"
    assert record.flavor == "m1.tiny"               # the smallest; its disk is 0
    assert leaked(lc) == {}                          # server, volume, rule, group, keypair
    assert not list((tmp_path / "journal").glob("*.json"))


def test_never_booting_from_a_volume_is_refused_before_anything_is_made(clouds, image_id, lc,
                                                                        tmp_path):
    """Nova would refuse every flavor here (403, tests/localcloud/test_volumes.py): the
    flavor choice says so first, in one line naming the setting."""
    with pytest.raises(errors.BootError) as caught:
        verify(clouds["zd-never"], image_id, tmp_path)
    message = str(caught.value)
    assert message.startswith("zd-never: boot: no flavor has 512 MB RAM and 1 GB disk"), message
    assert "0 GiB root disk" in message and "compute.boot_from_volume" in message
    assert leaked(lc) == {}


def test_a_volume_cinder_cannot_write_fails_in_one_line(clouds, lc, tmp_path):
    """A qcow2 whose virtual size (3 GiB) Glance does not report: the 1 GiB volume errors."""
    big = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(big), "3G"], check=True)
    big_id = upload_image(clouds["zd"], big, BIG, poll_interval=0.2).image_id
    with pytest.raises(errors.BootError) as caught:
        verify_image(clouds["zd"], big_id, BIG, work_dir=tmp_path, poll=0.5,
                     check="ssh-banner")
    message = str(caught.value)
    assert message.startswith("zd: volume: volume ") and "\n" not in message
    assert f"(1 GiB) went to error while Cinder wrote image {big_id} into it" in message
    assert leaked(lc) == {}


def test_cloud_only_passes_where_this_host_reaches_no_address(clouds, lc, tmp_path):
    cloud = clouds["zd-private"]
    # its own image: a failed verify marks the image it booted as failed
    image = upload_image(cloud, tinyimage.tiny_image(cloud.disk_format), PRIVATE,
                         poll_interval=0.2).image_id
    lc.add_fault(PERSONALITY, kind="no_answer")     # ACTIVE, no guest: nothing to reach
    record = verify_image(cloud, image, PRIVATE, work_dir=tmp_path / "cloud", poll=0.5,
                          check="cloud-only", console_wait=0)
    assert record.verified and record.check == "cloud-only"
    assert record.address is None and record.check_port is None and record.banner is None
    assert record.console == [] and record.boot_volume and record.seconds_to_active is not None
    assert leaked(lc) == {}
    lc.add_fault(PERSONALITY, kind="no_answer")
    with pytest.raises(errors.ReachabilityError, match="has no external IPv4 address"):
        verify_image(cloud, image, PRIVATE, work_dir=tmp_path / "banner", poll=0.5,
                     check="ssh-banner")
    assert leaked(lc) == {}


DRIVER = """
import sys
from pipeline.settings.clouds import load_clouds, select_clouds
from pipeline.settings.config import load_pipeline, load_profiles
from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.verify import verify_image
config = load_pipeline(sys.argv[1])
(cloud,) = select_clouds(config, load_profiles(config.vendors_dir), load_clouds(sys.argv[2]),
                         only=["zd"])
verify_image(cloud, sys.argv[3], BuildInfo("killed", "sha256:00", "tiny"),
             work_dir=sys.argv[4], check="ssh-banner", boot_timeout=600)
"""


def test_a_killed_runs_volume_is_found_and_deleted_by_cleanup(clouds, clouds_yaml, image_id,
                                                              lc, tmp_path):
    work = tmp_path / "work"
    lc.add_fault(PERSONALITY, kind="no_answer")      # the check waits: time to kill it
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(REPO / "config" / "pipeline.yaml"),
         str(clouds_yaml), image_id, str(work)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while not {"servers", "volumes", "security_group_rules"} <= set(leaked(lc)):
            assert driver.poll() is None, "the driver ended before it could be killed"
            assert time.monotonic() < deadline, leaked(lc)
            time.sleep(0.2)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    (journal,) = (work / "journal").glob("*.json")
    assert "volumes" in journal.read_text()
    swept = subprocess.run(
        [sys.executable, "-m", "tasks.cli", "cleanup", "--cloud", "zd", "--clouds-yaml",
         str(clouds_yaml), "--work-dir", str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert swept.returncode == 0, swept.stderr
    assert "volumes" in swept.stdout and "servers" in swept.stdout, swept.stdout
    assert leaked(lc) == {}
    assert not list((work / "journal").glob("*.json"))
    assert cleanup.sweep(clouds["zd"], journal_dir=work / "journal", poll=0.5) == {}
