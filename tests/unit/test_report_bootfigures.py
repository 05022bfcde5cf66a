"""The local boot's systemd-analyze figures reach the row, the terminal and the HTML."""

from __future__ import annotations

import json

from pipeline.cloud.bootfigures import parse
from pipeline.run.report import cloud_row, make_report, render_html, render_table

ANALYZE = """\
Startup finished in 2.001s (kernel) + 31.400s (userspace) = 33.401s
multi-user.target reached after 31.3s in userspace.
    14.500s cloud-init.service
     6.250s cloud-init-local.service
"""


def test_boot_figures_in_row_table_and_html():
    boot = {"accel": "tcg", "accel_why": "/dev/kvm missing", "boot_figures": parse(ANALYZE)}
    row = cloud_row("hp", "hp-like", "qcow2", build={}, convert={}, local_boot=boot,
                    upload=None, verify=None, error=None, failed_stage=None)
    assert row.boot_figures["total"] == 33.401
    report = json.loads(json.dumps(make_report("2026-11-30", "abc", [row])))
    line = ("first boot qcow2: kernel 2.0 s; userspace 31.4 s; total 33.4 s; slowest: "
            "cloud-init.service 14.5 s, cloud-init-local.service 6.2 s")
    assert line in render_table(report)
    assert "first boot: kernel 2.0 s" in render_html(report)


def test_a_boot_without_figures_adds_no_line():
    row = cloud_row("hp", "hp-like", "qcow2", build={}, convert={},
                    local_boot={"accel": "tcg", "accel_why": "x"}, upload=None, verify=None,
                    error=None, failed_stage=None)
    report = make_report("2026-11-30", "abc", [row])
    assert "first boot" not in render_table(report) and "first boot" not in render_html(report)
