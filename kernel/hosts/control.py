"""The guest's end of the control channel: Cap'n Proto requests from the server.

In a QEMU VM the server reaches the guest kernel through a second serial
port (the first is the shell's terminal). It sends `ControlRequest`s
(schema/control.capnp) framed as a standard Cap'n Proto stream; this
channel decodes them with the project's own codec, acts on the host, and
answers each with one `ControlResponse` carrying the request's id. The
server encodes and decodes with pycapnp, so every native session exercises
wire compatibility with the reference implementation.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from typing import TYPE_CHECKING

from kernel.codec import Bundle, DecodeError, decode, encode
from kernel.codec.framing import frame_size
from kernel.services.monitor import SystemMonitor

if TYPE_CHECKING:
    from kernel.hosts.native import NativeHost

MAX_MESSAGE = 64 * 1024
READ_SIZE = 4096
MAX_SEED = 512
MAX_MONITOR_RECORDS = 200  # calls and logs a monitor request may ask for, each
MAX_MODEL_START = 24 * 1024  # one generation's conversation, encoded, sent to the server
_RNDADDENTROPY = 0x40085203  # linux/random.h: credit entropy and mix it into the input pool
_RNDRESEEDCRNG = 0x5207  # reseed the CRNG from the input pool now


class ControlChannel:
    def __init__(self, fd: int, host: NativeHost) -> None:
        self.fd = fd
        self.host = host
        bundle = Bundle.default()
        self._request = bundle.struct("ControlRequest")
        self._response = bundle.struct("ControlResponse")
        self._snapshot = bundle.struct("MonitorSnapshot")
        self._monitor = SystemMonitor(host.kernel)  # one view: object ids stay stable
        self._model_start = bundle.struct("ModelStart")
        self._buffer = bytearray()
        self.shutdown_requested = False
        host.agent_replies = self._agent_answered
        # Generations for the server's model (see start), until its next modelWork asks.
        self._starts: list[dict] = []
        self._cancels: list[int] = []
        self._work_request: int | None = None

    def readable(self) -> None:
        """Take what the line has, answer every whole request in it."""
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        self._buffer += data
        while self._buffer:
            try:
                size = frame_size(self._buffer, MAX_MESSAGE)
            except DecodeError as exc:
                # A stream that lost its framing cannot be resynchronised: drop what we have.
                self._buffer.clear()
                self._send({"id": 0, "error": f"bad frame, input dropped: {exc}"})
                return
            if size is None:
                return
            frame = bytes(self._buffer[:size])
            del self._buffer[:size]
            try:
                request = decode(self._request, frame)
            except DecodeError as exc:
                self._send({"id": 0, "error": f"undecodable ControlRequest: {exc}"})
                continue
            answer = self._answer(request)
            if answer is not None:
                self._send({"id": request.get("id", 0), **answer})

    def _answer(self, request: dict) -> dict | None:
        """The response's body, or None when it will come later (an agent's request)."""
        host = self.host
        if "agent" in request:  # the shell answers it, through _agent_answered
            host.kernel.agents.submit({**request["agent"], "id": request["id"]})
            return None
        if "modelWork" in request:  # answered when there is work (see _hand_work)
            self._work_request = request["id"]
            self._hand_work()
            return None
        if "modelEvents" in request:
            model = host.kernel.model
            if model is None:
                return {"error": "this guest runs no model"}
            events = request["modelEvents"]
            for event in events["events"]:
                model.feed(events["stream"], event)
            return {"done": None}
        if "ping" in request:
            kernel = host.kernel
            uptime = host.now_ns() - kernel.boot_ns
            return {"pong": {"uptimeNs": uptime, "processes": len(kernel.processes)}}
        if "resize" in request:
            size = request["resize"]
            host.resize_terminal(size["cols"], size["rows"])
            return {"done": None}
        if "shutdown" in request:
            self.shutdown_requested = True
            return {"done": None}
        if "monitor" in request:
            limits = request["monitor"]
            snapshot = self._monitor.take_snapshot(
                min(limits["maxCalls"], MAX_MONITOR_RECORDS),
                min(limits["maxLogs"], MAX_MONITOR_RECORDS),
            )
            return {"snapshot": zlib.compress(encode(self._snapshot, snapshot), 6)}
        if "reseed" in request:
            try:
                reseed_linux_rng(request["reseed"])
            except OSError as exc:
                return {"error": f"cannot reseed the RNG: {exc}"}
            return {"done": None}
        return {"error": "unknown request: this guest does not implement it"}

    # --- the server's model: this channel is the host's ModelBackend ----------------------

    def start(self, stream: int, request: dict) -> None:
        start = {"stream": stream, **request}
        size = len(encode(self._model_start, start))  # the kernel checked it against the schema
        if size > MAX_MODEL_START:
            model = self.host.kernel.model
            assert model is not None  # the model this channel runs asked for the start
            model.feed(
                stream,
                {
                    "error": f"the conversation is {size} bytes, over the {MAX_MODEL_START} "
                    "that go to the server's model: leave agent mode and start again"
                },
            )
            return
        self._starts.append(start)
        self._hand_work()

    def cancel(self, stream: int) -> None:
        self._cancels.append(stream)
        self._hand_work()

    def close(self) -> None:
        """Nothing to stop here: the server's model ends with the VM."""

    def _hand_work(self) -> None:
        """Answer the server's waiting modelWork with what fits in one message."""
        if self._work_request is None or not (self._starts or self._cancels):
            return
        starts: list[dict] = []
        room = MAX_MESSAGE - 1024
        while self._starts and (not starts or room >= MAX_MODEL_START):
            starts.append(self._starts.pop(0))
            room -= MAX_MODEL_START
        work = {"starts": starts, "cancels": self._cancels}
        self._cancels = []
        request_id, self._work_request = self._work_request, None
        self._send({"id": request_id, "modelWork": work})

    def _agent_answered(self, response: dict) -> None:
        self._send({"id": response["id"], "agent": response})

    def _send(self, response: dict) -> None:
        view = memoryview(encode(self._response, response))
        while view:
            view = view[os.write(self.fd, view) :]


def reseed_linux_rng(seed: bytes) -> None:
    """Mix `seed` into Linux's RNG and reseed it now (needs CAP_SYS_ADMIN: PID 1 has it)."""
    if not 16 <= len(seed) <= MAX_SEED:
        raise OSError(f"a seed is 16..{MAX_SEED} bytes, not {len(seed)}")
    fd = os.open("/dev/urandom", os.O_WRONLY)
    try:
        fcntl.ioctl(fd, _RNDADDENTROPY, struct.pack("ii", len(seed) * 8, len(seed)) + seed)
        fcntl.ioctl(fd, _RNDRESEEDCRNG)
    finally:
        os.close(fd)
