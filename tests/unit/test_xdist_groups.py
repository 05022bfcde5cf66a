"""Which tests share a pytest-xdist worker: the groups of tests/xdist_groups.py."""

from __future__ import annotations

import pytest

from tests import xdist_groups


@pytest.mark.parametrize(("nodeid", "group"), [
    ("tests/e2e/test_dib_build.py::test_base_image_is_a_raw_disk", "base-image"),
    ("tests/integration/test_verify.py::test_x[hp-like]", "base-image"),
    ("tests/conformance/test_image.py::test_y[upstream]", "upstream"),
    ("tests/conformance/test_image.py::test_y[localcloud]", "upstream"),
    ("tests/integration/test_publish.py::test_z", "tests/integration/test_publish.py"),
    ("tests/unit/test_vhd.py::test_footer[a::b]", "tests/unit/test_vhd.py"),
])
def test_group_of(nodeid, group):
    assert xdist_groups.group_of(nodeid) == group


class FakeItem:
    def __init__(self, nodeid: str, *fixtures: str) -> None:
        self.nodeid = nodeid
        self.fixturenames = list(fixtures)


def test_a_module_using_the_build_outside_its_group_is_refused():
    items = [FakeItem("tests/integration/test_new.py::test_a", "tmp_path"),
             FakeItem("tests/integration/test_new.py::test_b", "base_image")]
    with pytest.raises(pytest.UsageError, match="test_new.py uses base_image"):
        xdist_groups.check(items)


def test_listed_modules_pass_the_check():
    xdist_groups.check([FakeItem("tests/e2e/test_new.py::test_a", "base_image"),
                        FakeItem("tests/conformance/test_new.py::test_b", "upstream_cloud")])


@pytest.mark.parametrize(("nodeids", "expected"), [
    # a measured long scope goes before a module with more tests
    (["tests/unit/test_vhd.py::a", "tests/unit/test_vhd.py::b", "tests/resilience/test_load.py::x"],
     ["tests/resilience/test_load.py::x", "tests/unit/test_vhd.py::a", "tests/unit/test_vhd.py::b"]),
    # the longest measured first, whatever the collection order
    (["tests/integration/test_publish.py::p", "tests/e2e/test_dib_build.py::d",
      "tests/integration/test_verify.py::v"],
     ["tests/e2e/test_dib_build.py::d", "tests/integration/test_verify.py::v",
      "tests/integration/test_publish.py::p"]),
    # unmeasured scopes: more tests first, then collection order; tests keep theirs
    (["tests/unit/test_a.py::1", "tests/unit/test_b.py::1", "tests/unit/test_b.py::2",
      "tests/unit/test_c.py::1"],
     ["tests/unit/test_b.py::1", "tests/unit/test_b.py::2", "tests/unit/test_a.py::1",
      "tests/unit/test_c.py::1"]),
])
def test_longest_scopes_are_handed_out_first(nodeids, expected):
    assert xdist_groups.ordered(nodeids) == expected


def test_a_module_using_the_compute_target_outside_conformance_is_refused():
    with pytest.raises(pytest.UsageError, match="test_new.py uses upstream_compute"):
        xdist_groups.check([FakeItem("tests/integration/test_new.py::test_a",
                                     "upstream_compute")])
    xdist_groups.check([FakeItem("tests/conformance/test_new.py::test_a", "upstream_compute")])
