"""Every tour on the other backend: a native session in a QEMU VM from the server's pool.

The panel's checks read the guest kernel's SystemMonitor over the control
channel (server/monitorapi.py); each tour gets a fresh VM, ended after it.
"""

from __future__ import annotations

import json

import pytest

from bench.poolserver import pool_server
from server.tours import load_tours
from server.tourverify import POOL_OPTIONS, verify_native

pytestmark = [pytest.mark.qemu, pytest.mark.browser]


@pytest.fixture(scope="module")
def server():
    with pool_server(*POOL_OPTIONS) as served:
        yield served


@pytest.mark.parametrize("tour", load_tours(), ids=lambda tour: tour.name)
def test_every_tour_passes_on_a_native_session(browser, server, tour):
    verify_native(browser, server, tour)


def test_the_monitor_api_serves_the_guest_kernels_snapshot(server):
    session = server.new_session()
    try:
        snapshot = server.http.get(f"/api/sessions/{session['id']}/monitor").json()
        binaries = {p["binary"] for p in snapshot["processes"]}
        assert {"init", "shell", "counter-server"} <= binaries
        assert snapshot["scopePid"] == 0 and snapshot["seq"] > 0
        missing = server.http.get("/api/sessions/nosuch/monitor")
        assert missing.status_code == 404
    finally:
        server.http.delete(f"/api/sessions/{session['id']}")


def test_the_monitor_stream_pushes_snapshots_and_ends_when_the_client_goes(server):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    session = server.new_session()
    url = f"ws://127.0.0.1:{server.port}/api/sessions/{session['id']}/monitor/stream"
    try:
        with connect(url, open_timeout=30) as socket:
            frame = json.loads(socket.recv(timeout=30))
            assert frame["type"] == "snapshot" and frame["snapshot"]["processes"]
        # the client left: the session is no longer held awake by it
        server.wait_for(
            lambda: server.http.get(f"/api/sessions/{session['id']}").json()["clients"] == 0,
            "the monitor stream to notice its client left",
            timeout=10,
        )
        with pytest.raises(InvalidStatus) as refused:  # another site's page may not watch
            connect(url, origin="https://elsewhere.example", open_timeout=30)
        assert refused.value.response.status_code == 403
    finally:
        server.http.delete(f"/api/sessions/{session['id']}")
