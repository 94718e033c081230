"""Exercise the kernel core wherever this Python runs, and say what happened.

The browser's memory snapshot is made only after this passes in Pyodide
(kernel/hosts/browser.py warm_up): it proves the pure-Python codec, the
ring and the dispatcher work in WebAssembly before any tab depends on them.
Every step is a real ring round trip through `Kernel.enter` on the direct host.
"""

from __future__ import annotations

import platform
import sys
import time

from kernel import abi
from kernel.abi import Err, Op
from kernel.captable import CapEntry, Origin, TransferPolicy
from kernel.codec import Bundle, decode, encode
from kernel.hosts.direct import DirectHost
from kernel.kernel import Kernel
from kernel.manifest import encode_document
from kernel.process import SessionContext
from kernel.ring import UserRing, sqe

MANIFEST = {
    "schemaVersion": 1,
    "kernelParams": {"motd": "self-check"},
    "binaries": [{"name": "init", "module": "kernel.programs.init"}],
    "initConfig": {"init": "init", "services": []},
}
NOPS = 1600


class SelfCheckFailed(Exception):
    pass


def run() -> list[str]:
    """The checks, one line each; raises SelfCheckFailed naming the first that fails."""
    bundle = Bundle.default()
    host = DirectHost()
    kernel = Kernel(host, encode_document(MANIFEST))
    console = kernel.kernel_caps["console"]
    entry = CapEntry(console, console.interface_id, TransferPolicy.COPY, Origin.KERNEL)
    proc, _ = kernel.create_process(
        "selfcheck",
        "init",
        [("console", "cap", entry)],
        parent=None,
        session=SessionContext(host.entropy(16)),
    )
    ring = UserRing.attach(proc.ring.region)
    [(_, console_id, console_iface)] = proc.capset
    lines = [
        f"python {platform.python_version()} on {sys.platform}; ring ABI v{abi.ABI_VERSION}; "
        f"{len(bundle.interfaces)} interfaces in the schema bundle"
    ]

    write = bundle.interface("Console").method("writeLine")
    message = encode(write.params, {"text": "hello from the capability ring"})
    ring.write_buffer(0, message)
    ring.submit(
        sqe(
            Op.CALL,
            cap_id=console_id,
            interface_id=console_iface,
            method_id=write.ordinal,
            params_addr=0,
            params_len=len(message),
            result_addr=1024,
            result_len=256,
            user_data=1,
        )
    )
    ring.submit(sqe(Op.NOP, user_data=2))
    ring.submit(sqe(0, user_data=3))  # opcode 0 is invalid: must come back as an error
    kernel.enter(proc.pid)
    results = {c.user_data: c.result for c in ring.reap()}
    _expect(results.get(1, -1) >= 0, f"Console.writeLine failed: {results.get(1)}")
    _expect(host.console == b"hello from the capability ring\n", "the console got no text")
    _expect(results.get(2) == 0, f"NOP failed: {results.get(2)}")
    _expect(results.get(3) == Err.UNSUPPORTED_OPCODE, "a bad opcode was not refused")
    decode(write.results, ring.read_buffer(1024, results[1]))
    lines.append("Console.writeLine, NOP and a refused bad opcode: ok")

    start = time.perf_counter()
    for batch in range(NOPS // abi.SQ_ENTRIES):
        for i in range(abi.SQ_ENTRIES):
            ring.submit(sqe(Op.NOP, user_data=batch * abi.SQ_ENTRIES + i))
        kernel.enter(proc.pid)
        _expect(len(ring.reap()) == abi.SQ_ENTRIES, "NOPs went missing")
    rate = NOPS / (time.perf_counter() - start)
    lines.append(f"{NOPS} NOPs through the kernel: {rate:,.0f} per second")
    _expect(kernel.faults == [], f"kernel faults: {kernel.faults}")
    return lines


def _expect(condition: bool, failure: str) -> None:
    if not condition:
        raise SelfCheckFailed(failure)
