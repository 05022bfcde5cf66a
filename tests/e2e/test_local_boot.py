"""Boot the real base image under qemu with a config drive and log in with a fresh key.

The proof a cloud would give, locally: cloud-init reads the config drive,
installs our key for the login user, sshd answers and the build id inside
the image is the one we built.  Two boots through ``LocalBoot``'s own function
(so the accelerator decision and its fallback are the pipeline's), side by side
(one TCG guest per core): the qcow2 conversion with static networking from the
config drive, and the raw base image with DHCP.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.cloud.localboot import local_boot

pytestmark = pytest.mark.slow

# elements/imagefleet-base/README.rst: keys go to DIB_IMAGEFLEET_LOGIN_USER, default "debian".
LOGIN_USER = os.environ.get("IMAGEFLEET_LOGIN_USER", "debian")
BOOT_TIMEOUT = 900  # TCG on two cores; KVM needs a fraction


@pytest.fixture(scope="module")
def boots(base_image, tmp_path_factory) -> dict:
    """Both boots at once; each test reads its own result (or its own error)."""
    work = tmp_path_factory.mktemp("e2e-boots")
    (work / "qcow2").mkdir()
    before = os.stat(base_image.path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            # the pipeline's own qcow2 conversion: a converted image must boot too
            "qcow2": pool.submit(local_boot, base_image.images["qcow2"], "qcow2",
                                 base_image.build_id, work_dir=work / "qcow2",
                                 timeout=BOOT_TIMEOUT, username=LOGIN_USER,
                                 static_network=True),
            "raw": pool.submit(local_boot, base_image.path, "raw", base_image.build_id,
                               work_dir=work / "raw", timeout=BOOT_TIMEOUT,
                               username=LOGIN_USER)}
        for future in futures.values():
            future.exception()            # wait for both
    futures["raw_before"] = before
    futures["raw_dir"] = work / "raw"
    return futures


def test_qcow2_boots_with_static_network_from_config_drive(boots, base_image,
                                                           record_property):
    result = boots["qcow2"].result()
    print(f"\nlocal boot of the qcow2, static network ({result['accel']}): banner after "
          f"{result['seconds_to_banner']} s, login after {result['seconds_to_login']} s")
    record_property("seconds_to_banner", result["seconds_to_banner"])
    record_property("seconds_to_login", result["seconds_to_login"])
    assert result["build_id"] == base_image.build_id
    assert result["host_key"].startswith("ssh-ed25519 ")


def test_raw_passes_the_local_boot_with_dhcp_and_is_not_modified(boots, base_image):
    result = boots["raw"].result()
    print(f"\nlocal boot of base.raw ({result['accel']}): banner after "
          f"{result['seconds_to_banner']} s, login after {result['seconds_to_login']} s")
    assert result["verified"] and result["build_id"] == base_image.build_id
    assert result["host_key"].startswith("ssh-ed25519 ")
    before, after = boots["raw_before"], os.stat(base_image.path)
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    assert not list(boots["raw_dir"].glob("*overlay*"))


def test_each_local_boot_records_systemd_analyze_figures(boots):
    for fmt in ("qcow2", "raw"):
        figures = boots[fmt].result()["boot_figures"]
        print(f"\nfirst boot of the {fmt}: {figures}")
        assert figures["finished"] and figures["total"] > figures["kernel"] > 0
        assert figures["blame"] and all(secs >= 0 for _, secs in figures["blame"])
