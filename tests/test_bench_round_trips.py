"""`bench kernel`'s round trips: ours and pycapnp's, each with the CPU it burned."""

from __future__ import annotations

import os

import pytest

from bench.kernel import PACE_US, measure_endpoint_rtt
from bench.pycapnp_echo import measure_pycapnp
from kernel.hosts.native import SPIN_WINDOW_US

pytestmark = pytest.mark.native


def children() -> list[str]:
    """The command lines of this process's live children."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    command = cmdline.read().replace(b"\0", b" ").decode()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if parent == os.getpid():
                found.append(command)
    return found


@pytest.mark.parametrize(("spin_us", "pause_us"), [(0, 0), (SPIN_WINDOW_US, 0), (0, PACE_US)])
def test_our_round_trip_comes_with_the_cpu_time_it_cost(spin_us, pause_us):
    rtt_us, cpu_us = measure_endpoint_rtt(spin_us=spin_us, pause_us=pause_us)
    assert rtt_us > 0 and cpu_us > 0


def test_the_pycapnp_peer_serves_from_a_second_process_and_leaves_none_behind():
    figures = measure_pycapnp(50)
    assert figures["pycapnp_rtt_us"] > 0
    assert figures["pycapnp_client_cpu_us_per_call"] > 0
    assert figures["pycapnp_server_cpu_us_per_call"] > 0  # read from the server's own process
    assert figures["pycapnp_cpu_us_per_call"] == pytest.approx(
        figures["pycapnp_client_cpu_us_per_call"] + figures["pycapnp_server_cpu_us_per_call"]
    )
    assert not [c for c in children() if "bench.pycapnp_echo" in c]
