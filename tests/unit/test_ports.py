"""Ports our processes listen on come from below the kernel's ephemeral range."""

from __future__ import annotations

import socket

import pytest

from pipeline.core import ports


@pytest.mark.parametrize(("low", "expected"), [
    (32768, range(20768, 32768)),      # Linux's default range starts at 32768
    (10000, range(1024, 10000)),       # never a privileged port
])
def test_listen_range_is_just_below_the_ephemeral_range(low, expected):
    assert ports.listen_range(low) == expected


def test_free_ports_are_distinct_free_and_from_the_range():
    picked = ports.free_ports(6)
    assert len(set(picked)) == 6 and all(p in ports.listen_range() for p in picked)
    for port in picked:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_taken_port_is_passed_over_and_too_few_is_an_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        for _ in range(20):                 # shuffled: the taken one is never given
            (got,) = ports.free_ports(1, range(port, port + 50))
            assert got != port and port < got < port + 50
        with pytest.raises(OSError, match="fewer than 1 free ports"):
            ports.free_ports(1, range(port, port + 1))
