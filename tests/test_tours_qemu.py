"""Every tour on the other backend: a native session in a QEMU VM from the server's pool.

The panel's checks read the guest kernel's SystemMonitor over the control
channel (server/monitorapi.py); each tour gets a fresh VM, ended after it.
"""

from __future__ import annotations

import pytest

from bench.poolserver import pool_server
from bench.tab import CHROMIUM, CHROMIUM_FLAGS
from server.tours import load_tours
from server.tourverify import POOL_OPTIONS, verify_native

pytestmark = [pytest.mark.qemu, pytest.mark.browser]


@pytest.fixture(scope="module")
def server():
    with pool_server(*POOL_OPTIONS) as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


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
