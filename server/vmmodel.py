"""Agent mode in a QEMU session: the guest kernel's LanguageModel, served by the server's model.

The guest has no model files and no network, so its kernel's model cap
hands generations to the control channel (kernel/hosts/control.py). Here
the server asks for them (`modelWork`, answered when the guest has some),
checks each as strictly as a browser tab's (a guest is as untrusted as a
tab), runs it on the shared ModelHub through a line of the VM's own, and
sends the events back (`modelEvents`). One of these runs per VM, owned by
the VM's task group; it ends, with every generation it started, when the
VM does.
"""

from __future__ import annotations

import asyncio

from server.control import ControlClient, ControlError
from server.modelhub import Line, ModelHub
from server.modelrequest import BadRequest, check_request

MAX_EVENTS_A_MESSAGE = 64  # events batched into one modelEvents (text deltas add up fast)


async def serve_model(control: ControlClient, hub: ModelHub, client: str) -> None:
    """`client`: whose turn at the model and budget this VM's generations are."""
    with hub.line(client) as line:
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(_send_events(control, line))
                await _take_work(control, line)
        except* (ControlError, TimeoutError):
            pass  # the VM is gone (or stopped answering): its generations end with the line


async def _take_work(control: ControlClient, line: Line) -> None:
    while True:
        work = (await control.call(modelWork=None, timeout=None))["modelWork"]
        for start in work["starts"]:
            stream = start.pop("stream")
            try:
                line.generate(stream, check_request(start))
            except BadRequest as exc:
                line.reply(stream, {"error": f"the server refused the request: {exc}"})
        for stream in work["cancels"]:
            line.cancel(stream)


async def _send_events(control: ControlClient, line: Line) -> None:
    """The line's events to the guest, in order, consecutive ones of a stream together."""
    while True:
        frames = [await line.outbox.get()]
        while not line.outbox.empty() and len(frames) < MAX_EVENTS_A_MESSAGE:
            frames.append(line.outbox.get_nowait())
        batch: list[tuple[int, list[dict]]] = []
        for frame in frames:
            if frame["type"] != "event":  # only bad socket frames make these; none come here
                continue
            if batch and batch[-1][0] == frame["stream"]:
                batch[-1][1].append(frame["event"])
            else:
                batch.append((frame["stream"], [frame["event"]]))
        for stream, events in batch:
            await control.call(modelEvents={"stream": stream, "events": events}, timeout=30)
