"""GET /metrics: the server's figures in Prometheus text format, from its own registry."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient
from test_server import isolated

from kernel.hosts.models.settings import ModelSettings
from server.app import create_app
from server.settings import Settings


def scrape(client: TestClient) -> dict[str, dict[tuple, float]]:
    """Every sample by name, keyed by its sorted labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_metrics_are_prometheus_text_uncached_with_the_site_headers():
    response = TestClient(create_app(), base_url="http://localhost").get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["cache-control"] == "no-store" and isolated(response)


def test_sessions_by_backend_start_at_zero_and_follow_the_directory(tmp_path):
    settings = Settings(data_dir=tmp_path, model=ModelSettings(disabled=True))
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        zero = {(("backend", backend),): 0.0 for backend in ("qemu", "tab", "mirror")}
        assert scrape(client)["capos_sessions"] == zero
        assert scrape(client)["capos_session_faults_total"] == zero
        tabs = [client.post("/api/tabs").json()["id"] for _ in range(2)]
        assert scrape(client)["capos_sessions"][(("backend", "tab"),)] == 2.0
        assert client.delete(f"/api/tabs/{tabs[0]}").status_code == 204
        deadline = time.monotonic() + 5
        while scrape(client)["capos_sessions"][(("backend", "tab"),)] != 1.0:
            assert time.monotonic() < deadline, "an ended tab session is still counted"
            time.sleep(0.02)
        samples = scrape(client)
        assert samples["capos_vm_boot_failures_total"][()] == 0.0
        assert samples["capos_pool_waiting_requests"][()] == 0.0


def test_each_app_counts_for_itself():
    first, second = create_app(), create_app()
    first.state.metrics.websocket_clients.labels(role="viewer").inc(3)
    assert "capos_websocket_clients" not in scrape(TestClient(second, base_url="http://localhost"))
    assert scrape(TestClient(first, base_url="http://localhost"))["capos_websocket_clients"] == {
        (("role", "viewer"),): 3.0
    }


def test_the_servers_own_process_figures_are_exported():
    samples = scrape(TestClient(create_app(), base_url="http://localhost"))
    assert samples["process_resident_memory_bytes"][()] > 0
    assert "python_info" in samples and "python_gc_collections_total" in samples


def test_metrics_refuse_other_methods():
    assert (
        TestClient(create_app(), base_url="http://localhost").post("/metrics", json={}).status_code
        == 405
    )
