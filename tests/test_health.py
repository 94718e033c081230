"""GET /healthz tells the truth: every part's state, and 503 naming a part that is down."""

from __future__ import annotations

from starlette.testclient import TestClient

from kernel.hosts.models.settings import ModelSettings
from server.app import create_app
from server.settings import Settings


def test_a_running_server_answers_200_with_each_parts_state(tmp_path):
    settings = Settings(data_dir=tmp_path, model=ModelSettings(disabled=True))
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["status"] == "ok" and "down" not in body
        states = {name: part["state"] for name, part in body["parts"].items()}
        assert states == {
            "pool": "off",  # no QEMU here (no --max-vms)
            "share_hub": "ok",
            "redis": "off",  # a single server
            "store": "ok",
            "model": "off",
            "mcp": "ok",
        }
        assert "--max-vms 0" in body["parts"]["pool"]["detail"]
