"""The userspace runtime every capOS program links: capOS's `capos-rt`, in Python.

It owns the process's side of the ring: buffer management, completion
matching by user_data, the CapSet, typed clients built from the schema
bundle, owned handles that RELEASE when dropped, and endpoint serving.
"""

from kernel.runtime.errors import ProcessEnded, RemoteError, TransportFailure
from kernel.runtime.runtime import Cap, Incoming, Move, Pending, Runtime

__all__ = [
    "Cap",
    "Incoming",
    "Move",
    "Pending",
    "ProcessEnded",
    "RemoteError",
    "Runtime",
    "TransportFailure",
]
