# ruff: noqa: F811 - the fixtures of test_upload.py are imported here and named as arguments
"""Stalled connections during an upload: a call that is accepted and never answered, or a
body that stops being read, ends by the client's timeouts, not by waiting (the local
cloud's ``stall`` fault; docs/vendor-behaviour.md, "Timeouts")."""

from __future__ import annotations

import time

import pytest

from pipeline.cloud.upload import upload_image
from pipeline.core import errors
from tests.integration.test_upload import (  # noqa: F401 - fixtures, used by name
    FAST,
    MiB,
    assert_only,
    cleanup,
    images,
    lc,
    make_cloud,
    new_build,
    profiles,
    upload,
)

# A stall is held 20 s at most: without client timeouts an upload would wait that long.
STALL = {"kind": "stall", "seconds": 20}


def stalled_cloud(lc, profiles, name, api_timeout):
    cloud = make_cloud(lc, profiles, name)
    cloud.config.config["api_timeout"] = api_timeout
    return cloud


def assert_released(lc, name):
    """The local cloud holds no stalled call any more: nothing leaks on either side."""
    def held():
        return sum(f["holding"] for f in lc.faults(name))
    deadline = time.monotonic() + 10
    while held() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert held() == 0


@pytest.mark.parametrize("name, service, path", [
    ("dreamhost-like", "image", "/file$"),                     # the Glance data PUT
    ("rackspace-like", "object-store", "/imagefleet-staging/"),  # the Swift staging PUT
])
def test_stalled_transfer_times_out_and_starts_over(lc, profiles, images, cleanup, name,
                                                     service, path):
    lc.add_fault(name, **STALL, service=service, method="PUT", path=path)
    cloud = stalled_cloud(lc, profiles, name, api_timeout=2)
    began = time.monotonic()
    record = upload(cloud, images, new_build(), cleanup)
    assert time.monotonic() - began < 15
    assert record.attempts == 2
    assert lc.faults(name)[0]["fired"] == 1
    assert_released(lc, name)
    assert_only(lc, name, [record.image_id])


def test_a_call_that_always_stalls_fails_in_bounded_time_in_one_line(lc, profiles, images):
    # The body stops being read after 1 MiB: the client's writes stall, then its reads.
    lc.add_fault("ovh-like", kind="stall", seconds=5, after_bytes=MiB, method="PUT",
                 path="/file$", times=None)
    cloud = stalled_cloud(lc, profiles, "ovh-like", api_timeout=1)
    began = time.monotonic()
    with pytest.raises(errors.TimedOut) as info:
        upload_image(cloud, images["qcow2"], new_build(), max_attempts=2, **FAST)
    assert time.monotonic() - began < 15
    assert str(info.value).startswith("ovh-like: upload: no progress within the timeout (")
    assert "\n" not in str(info.value)
    assert lc.faults("ovh-like")[0]["fired"] == 2
    assert_released(lc, "ovh-like")
    assert_only(lc, "ovh-like", [])
