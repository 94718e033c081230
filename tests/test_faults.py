"""Faults end only what they touch: real QEMU, real guests, a real redis-server, a real
disk limit, each followed by a check that the unrelated sessions still echo, that no
byte was lost or repeated, and that /healthz says what happened (bench/faults.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import faults
from bench.liveserver import live_server

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.redis,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def up() -> Iterator[faults.Service]:
    with faults.service(bystanders=2, max_vms=6) as service:
        yield service


def test_kill_9_of_one_qemu_ends_its_session_alone(up):
    fault = faults.kill_qemu(up)
    assert "SIGKILL" in fault.reason
    assert up.check_bystanders() == 0
    assert faults.health(up.a)[0] == 200


def test_a_guest_sending_an_unreadable_control_frame_ends_its_own_session_only(up):
    fault = faults.misbehaving_guest(up, "garbage", "garbage_control.py", flood=False)
    assert "malformed control frame" in fault.reason
    assert up.check_bystanders() == 0
    status, body = faults.health(up.a)
    assert status == 200 and body["parts"]["pool"]["state"] == "ok"


def test_a_guest_exiting_with_input_unread_ends_its_own_session_only(up):
    fault = faults.misbehaving_guest(up, "unread", "exit_unread.py", flood=True)
    assert "powered off" in fault.reason or "crashed" in fault.reason
    assert up.check_bystanders() == 0
    assert faults.health(up.a)[0] == 200


def test_redis_killed_and_restarted_loses_and_repeats_nothing(up):
    fault = faults.restart_redis(up, outage_s=2.0)
    assert fault.details["healthz_while_down"] == ["redis"]  # named while it was away
    status, message = fault.details["share_while_down"]
    assert status == 503 and "Redis" in message
    status, message = fault.details["revoke_while_down"]
    assert status == 503 and message.startswith("revoked on this server, but")
    assert fault.details["revoked_viewer_on_b"] == "the session's owner revoked this share link"
    assert fault.details["unknown_link_on_b_while_down"] == 503  # not a false 404
    assert fault.details["tab_state_after"] == "running"
    assert fault.bytes_lost == 0  # every byte written during the outage reached the viewer
    assert up.check_bystanders() == 0
    assert faults.health(up.a)[0] == 200 and faults.health(up.b)[0] == 200


def test_a_recording_the_disk_refuses_stops_with_a_marker_and_the_session_goes_on(tmp_path):
    with live_server(faults.quiet_settings(tmp_path)) as server:
        fault = faults.recording_disk_full(server, limit=512 * 1024)
    assert "could not write the recording" in fault.reason
    assert fault.details["every_line_parses"]  # the cast is still valid to play
    assert '"m", "recording stopped: the server could not write' in fault.details["last_line"]
    assert fault.details["session_state"] == "running"


def test_a_disk_under_its_free_space_floor_refuses_new_recordings(tmp_path):
    status, message = faults.disk_floor_refusal(tmp_path)
    assert status == 507 and "nearly full" in message
