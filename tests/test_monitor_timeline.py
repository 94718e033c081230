"""The monitor timeline: its format, the state a replay rebuilds at any time (by the
replay page's own module, web/static/monitor-timeline.js, run in Node), its keyframe
bound, and snapshots the schema refuses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from monitortimeline import read_timeline, story

from server.monitortimeline import KEEP, KEY_RATIO, BadSnapshot, TimelineWriter, normalize
from server.settings import REPO_ROOT

MODULE = REPO_ROOT / "web" / "static" / "monitor-timeline.js"
STATES_AT = """
import { readFileSync } from "node:fs";
import { Timeline } from "%s";
const [path, times] = [process.argv[1], JSON.parse(process.argv[2])];
const timeline = new Timeline(readFileSync(path, "utf8"));
process.stdout.write(JSON.stringify(times.map((t) => timeline.stateAt(t))));
"""


def states_at(path: Path, times: list[float]) -> list[dict | None]:
    """What the replay page's module rebuilds from the timeline at each time, in order."""
    script = STATES_AT % MODULE.as_uri()
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script, str(path), json.dumps(times)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def write(path: Path, shots: list[dict], max_bytes: int = 1 << 24) -> TimelineWriter:
    """Each snapshot at its index in seconds, as a recorder writes them."""
    timeline = TimelineWriter(path, max_bytes)
    for at, shot in enumerate(shots):
        step = timeline.step(shot, float(at))
        if step is not None:
            timeline.write(step)
    timeline.close()
    return timeline


def seen_by(shots: list[dict], name: str) -> list[dict]:
    """Every record of `name` the snapshots carried, once each, by seq; the newest KEEP."""
    records = {r["seq"]: r for shot in shots for r in shot[name]}
    return [records[seq] for seq in sorted(records)][-KEEP[name] :]


def test_the_state_at_any_time_is_what_the_monitor_showed_then(tmp_path):
    shots = story()
    path = tmp_path / "r.monitor"
    write(path, shots)
    header, events = read_timeline(path.read_text())
    assert header["keep"] == KEEP
    assert events[0][1] == "k" and {code for _, code, _ in events} == {"k", "d"}
    assert 2 not in [at // 1_000_000 for at, _, _ in events]  # the repeat added nothing
    times = [-1.0, *(i + 0.5 for i in range(len(shots)))]  # between snapshots, and before
    rebuilt = states_at(path, times)
    assert rebuilt[0] is None
    for i, state in enumerate(rebuilt[1:]):
        shown = normalize(shots[i])
        for key in ("seq", "processes", "endpoints", "tracing"):
            assert state[key] == shown[key], (i, key)
        for name in KEEP:
            assert state[name] == seen_by(shots[: i + 1], name), (i, name)
    assert [p["name"] for p in rebuilt[2]["processes"]] == ["watcher", "server", "client"]
    assert "client" not in [p["name"] for p in rebuilt[-1]["processes"]]
    assert [e["name"] for e in rebuilt[-1]["exits"]] == ["client"]
    # seeking back and forth gives the same states as in order
    again = states_at(path, times[::-1])[::-1]
    assert again == rebuilt


def test_keyframes_bound_the_deltas_a_seek_applies(tmp_path):
    path = tmp_path / "r.monitor"
    write(path, story())
    lines = path.read_text().splitlines(keepends=True)[1:]
    keyframes, since = 0, 0
    key_size = 0
    for line in lines:
        size = len(line.encode())
        if json.loads(line)[1] == "k":
            keyframes, key_size, since = keyframes + 1, size, 0
        else:
            since += size
            assert since <= KEY_RATIO * key_size
    assert keyframes >= 2  # 40 changes outgrow the first keyframe


def test_a_timeline_past_its_limit_says_so_in_its_last_line(tmp_path):
    shots = story()
    timeline = TimelineWriter(tmp_path / "r.monitor", 8 * 1024)
    for at, shot in enumerate(shots):
        step = timeline.step(shot, float(at))
        if step is None:
            continue
        why = timeline.over(step.size)
        if why is not None:
            timeline.note(float(at), f"stopped: {why}")
            break
        timeline.write(step)
    timeline.close()
    text = (tmp_path / "r.monitor").read_text()
    _, events = read_timeline(text)
    assert events[-1][1:] == ("n", "stopped: the monitor timeline reached its limit of 8 KiB")
    assert len(text.encode()) <= 8 * 1024 + 400


@pytest.mark.parametrize(
    ("snapshot", "why"),
    [
        ([], "the value: expected a MonitorSnapshot (an object)"),
        ({"bogus": 1}, "bogus: MonitorSnapshot has no such field"),
        ({"processes": [{"pid": "one"}]}, "processes[0].pid: expected an integer 0..4294967295"),
        ({"processes": [{"pid": -1}]}, "processes[0].pid: expected an integer 0..4294967295"),
        ({"seq": 2**64}, "seq: expected an integer 0..18446744073709551615"),
        ({"seq": True}, "seq: expected an integer"),
        ({"processes": {"pid": 1}}, "processes: expected a list of ProcessInfo"),
        ({"processes": [{"caps": [{"capId": 1.5}]}]}, "processes[0].caps[0].capId: expected"),
        ({"logs": [{"level": "loud"}]}, "logs[0].level: expected one of debug, info, warn"),
        ({"tracing": "yes"}, "tracing: expected a bool"),
        ({"processes": [{"name": 7}]}, "processes[0].name: expected a text"),
    ],
)
def test_a_snapshot_the_schema_refuses_is_a_clear_error(snapshot, why):
    with pytest.raises(BadSnapshot) as refused:
        normalize(snapshot)
    assert str(refused.value).startswith(f"not a MonitorSnapshot: {why}")


def test_a_snapshot_that_leaves_fields_out_gets_them_empty():
    shown = normalize({"seq": 3, "processes": [{"pid": 1, "name": "init"}]})
    assert shown["endpoints"] == [] and shown["calls"] == []
    assert shown["processes"][0]["caps"] == [] and shown["processes"][0]["counters"]["enters"] == 0
