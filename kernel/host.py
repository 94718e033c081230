"""What the kernel core asks of the place it runs: the host does all I/O.

Three hosts implement this: in-process (threads, for unit tests), native
(one OS process per capOS process, shared memory, eventfd doorbells) and
browser (one Web Worker per process, SharedArrayBuffer, Atomics).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kernel.process import Process
    from kernel.region import Region


class Host(Protocol):
    def allocate_region(self, pid: int, size: int) -> Region:
        """Zeroed memory the process and the kernel will share (ring, CapSet, buffers)."""

    def start(self, proc: Process, module: str) -> None:
        """Run `module.main(runtime)` as `proc`, isolated from the kernel where the host can."""

    def stop(self, proc: Process) -> None:
        """Make sure `proc` runs no more (it exited, was killed, or lost)."""

    def now_ns(self) -> int:
        """Monotonic nanoseconds."""

    def entropy(self, size: int) -> bytes:
        """Cryptographically strong random bytes."""

    def console_write(self, proc: Process, data: bytes) -> None:
        """Output a process wrote to its Console cap."""

    def terminal_write(self, name: str, data: bytes) -> None:
        """Output for the terminal attached as `name` (only hosts that attach one are asked)."""

    def agent_reply(self, response: dict) -> None:
        """An outside agent's answer (an AgentResponse dict) for the request the host
        submitted with `kernel.agents.submit`. Only hosts that submit are asked."""


class ModelBackend(Protocol):
    """Where a host runs the generations of the model it attaches (`kernel.attach_model`):
    a provider on a thread of its own, the server's model across a guest's control
    channel, or a tab's page relaying to the server. It feeds each stream's events back
    through `kernel.model.feed(stream, event)`, ending with exactly one done or error."""

    def start(self, stream: int, request: dict) -> None:
        """Start a generation (LanguageModel.generate params)."""

    def cancel(self, stream: int) -> None:
        """Stop a generation early; events it still sends are ignored."""

    def close(self) -> None:
        """Stop for good (the host is shutting down)."""
