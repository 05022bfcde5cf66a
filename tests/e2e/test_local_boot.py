"""Boot the real base image under qemu with a config drive and log in with a fresh key.

The proof a cloud would give, locally: cloud-init reads the config drive,
installs our key for the login user, sshd answers and the build id inside
the image is the one we built.  One boot through ``LocalBoot``'s own function
(so the accelerator decision and its fallback are the pipeline's): the raw
base image with DHCP, untouched by the boot.  The other real-image boots of
the suite are in ``tests/integration/test_verify.py`` (same group, same build):
the qcow2 conversion on hp-like (metadata service), the VHD on rackspace-like
with static networking from the config drive. A TCG boot of the real image is
the suite's dearest step, so none of them is done twice.
"""

from __future__ import annotations

import os

import pytest

from pipeline.cloud.localboot import local_boot

pytestmark = pytest.mark.slow

# elements/imagefleet-base/README.rst: keys go to DIB_IMAGEFLEET_LOGIN_USER, default "debian".
LOGIN_USER = os.environ.get("IMAGEFLEET_LOGIN_USER", "debian")
BOOT_TIMEOUT = 900  # TCG on two cores; KVM needs a fraction


@pytest.fixture(scope="module")
def boots(base_image, tmp_path_factory) -> dict:
    """The raw boot's result (or its error) and what the test compares after it."""
    work = tmp_path_factory.mktemp("e2e-boots")
    before = os.stat(base_image.path)
    try:
        result = local_boot(base_image.path, "raw", base_image.build_id, work_dir=work / "raw",
                            timeout=BOOT_TIMEOUT, username=LOGIN_USER)
    except Exception as e:            # noqa: BLE001 - each test reports it as its own failure
        result = e
    return {"raw": result, "raw_before": before, "raw_dir": work / "raw"}


def outcome(boots: dict, fmt: str) -> dict:
    result = boots[fmt]
    if isinstance(result, Exception):
        raise result
    return result


def test_raw_passes_the_local_boot_with_dhcp_and_is_not_modified(boots, base_image):
    result = outcome(boots, "raw")
    print(f"\nlocal boot of base.raw ({result['accel']}): banner after "
          f"{result['seconds_to_banner']} s, login after {result['seconds_to_login']} s")
    assert result["verified"] and result["build_id"] == base_image.build_id
    assert result["host_key"].startswith("ssh-ed25519 ")
    before, after = boots["raw_before"], os.stat(base_image.path)
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    assert not list(boots["raw_dir"].glob("*overlay*"))


def test_the_local_boot_records_systemd_analyze_figures(boots):
    figures = outcome(boots, "raw")["boot_figures"]
    print(f"\nfirst boot of the raw: {figures}")
    assert figures["finished"] and figures["total"] > figures["kernel"] > 0
    assert figures["blame"] and all(secs >= 0 for _, secs in figures["blame"])
