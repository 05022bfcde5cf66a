"""systemd-analyze's answers, as a guest prints them, turned into boot figures."""

from __future__ import annotations

import pytest

from pipeline.cloud.bootfigures import parse, seconds, summary

FINISHED = """\
Startup finished in 3.084s (kernel) + 2.517s (initrd) + 1min 4.250s (userspace) = 1min 9.851s
graphical.target reached after 1min 4.101s in userspace.
    41.112s cloud-init-local.service
    18.904s cloud-init.service
1min 2.300s cloud-config.service
      812ms ssh.service
       95ms systemd-journald.service
"""
NO_INITRD = """\
Startup finished in 1.503s (kernel) + 12.208s (userspace) = 13.711s
multi-user.target reached after 12.1s in userspace.
     7.250s cloud-init.service
"""
NOT_FINISHED = """\
     7.250s cloud-init.service
"""


@pytest.mark.parametrize("span, expected", [
    ("3.084s", 3.084), ("812ms", 0.812), ("1min 4.250s", 64.25), ("2min", 120.0)])
def test_seconds(span, expected):
    assert seconds(span) == expected


def test_parse_finished_boot_with_initrd():
    figures = parse(FINISHED)
    assert figures["finished"] is True
    assert (figures["kernel"], figures["initrd"], figures["userspace"], figures["total"]) == \
        (3.084, 2.517, 64.25, 69.851)
    assert figures["blame"][:3] == [["cloud-init-local.service", 41.112],
                                    ["cloud-init.service", 18.904],
                                    ["cloud-config.service", 62.3]]
    assert ["ssh.service", 0.812] in figures["blame"]


def test_parse_without_initrd_and_unfinished():
    figures = parse(NO_INITRD)
    assert "initrd" not in figures and figures["total"] == 13.711
    unfinished = parse("Bootup is not yet finished (org.freedesktop.systemd1.Manager"
                       ".FinishTimestampMonotonic=0).\n" + NOT_FINISHED)
    assert unfinished["finished"] is False and "total" not in unfinished
    assert unfinished["blame"] == [["cloud-init.service", 7.25]]
    assert parse("sh: systemd-analyze: not found\n") == {"finished": False, "blame": []}


def test_summary_line():
    assert summary(parse(NO_INITRD)) == ("kernel 1.5 s; userspace 12.2 s; total 13.7 s; "
                                         "slowest: cloud-init.service 7.2 s")
    assert summary(None) == "no systemd-analyze figures"
