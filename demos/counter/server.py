"""counter-server: serves Counter on its exported endpoint `counter`.

One number, shared by every caller. Read this first: a service is a
class whose methods take the call and the method's params and return the
results, and a loop that answers calls with it.
"""

from __future__ import annotations

from kernel.runtime import RemoteError, Runtime
from kernel.runtime.service import Call, ServiceLoop

MAX_STEP = 1_000_000
MAX_VALUE = 2**64 - 1


class CounterService:
    def __init__(self) -> None:
        self.value = 0

    def increment(self, call: Call, by: int) -> dict:
        if not 1 <= by <= MAX_STEP:
            raise RemoteError("invalidArgument", f"increment by 1 to {MAX_STEP:,}, not {by}")
        if self.value + by > MAX_VALUE:
            raise RemoteError("overloaded", "the counter is full")
        self.value += by
        return {"value": self.value}

    def get(self, call: Call) -> dict:
        return {"value": self.value}


def main(rt: Runtime) -> int:
    ServiceLoop(rt, rt.cap("counter", "Endpoint"), "Counter", CounterService()).run()
    return 0
