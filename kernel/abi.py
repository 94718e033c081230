"""Ring ABI v0: the byte contract between a process and the kernel.

Everything a process shares with the kernel lives in one region of memory
(shared memory natively, a SharedArrayBuffer in the browser, a bytearray in
tests), laid out as::

    0x0000  ring page (4 KiB): header, 16 x 64-byte SQEs, 32 x 32-byte CQEs
    0x1000  CapSet page (4 KiB): the process's named bootstrap caps, kernel-written
    0x2000  buffer area: params, results and transfer descriptors, process-managed

The capOS book names the pieces (CapRingHeader, CapSqe, CapCqe, opcodes,
transport errors, CapId generations) but not their bytes; where it is silent
the choice below is ours ("ABI v0") and says why. All integers are
little-endian. Ring indices are free-running u32 counters masked by the
entry count, as in io_uring, so "full" and "empty" never look alike.

Addresses in SQEs (params_addr, result_addr, xfer_addr) are byte offsets into
the buffer area, never into the ring or CapSet pages: a process cannot make
the kernel read or write anything else.
"""

from __future__ import annotations

import struct
from enum import IntEnum

ABI_VERSION = 0
RING_MAGIC = 0x52504143  # "CAPR"
CAPSET_MAGIC = 0x53504143  # "CAPS"

PAGE_SIZE = 4096
RING_OFFSET = 0
CAPSET_OFFSET = PAGE_SIZE
BUFFER_OFFSET = 2 * PAGE_SIZE
DEFAULT_REGION_SIZE = 64 * 1024  # 56 KiB of buffer area per process by default

SQ_ENTRIES = 16
CQ_ENTRIES = 32
SQE_SIZE = 64
CQE_SIZE = 32
SQ_OFFSET = 2048  # the header owns the first half of the ring page
CQ_OFFSET = SQ_OFFSET + SQ_ENTRIES * SQE_SIZE
assert CQ_OFFSET + CQ_ENTRIES * CQE_SIZE == PAGE_SIZE


class Header:
    """Byte offsets of CapRingHeader fields (u32 each) and who writes them.

    A field written by one side is only read by the other, and each is read
    and written whole (one aligned 4-byte access), never byte by byte. The
    kernel re-validates everything the process writes on every `cap_enter`.
    """

    MAGIC = 0  # kernel, at setup
    VERSION = 4  # kernel, at setup
    SQ_HEAD = 8  # kernel: SQEs before this index are consumed
    SQ_TAIL = 12  # process: SQEs before this index are submitted
    CQ_HEAD = 16  # process: CQEs before this index are reaped
    CQ_TAIL = 20  # kernel: CQEs before this index are posted
    SQ_ENTRIES = 24  # kernel, at setup
    CQ_ENTRIES = 28  # kernel, at setup
    CQ_OVERFLOW = 32  # kernel: completions that found the CQ full and waited in the backlog
    SQ_CORRUPTIONS = 36  # kernel: times the SQ indices were nonsense and were reset
    BUFFER_OFFSET = 40  # kernel, at setup: where the buffer area starts in the region
    BUFFER_SIZE = 44  # kernel, at setup
    PID = 48  # kernel, at setup
    FLAGS = 52  # kernel: RingFlags
    # Doorbell hosts (native, browser): `cap_enter` writes ENTER_MIN, then rings.
    # The host wakes the process only once that many CQEs are available, so
    # a caller waiting for its answer is not woken by its own submission.
    ENTER_MIN = 56  # process
    # The native host's `exit` syscall: the process writes the code, then
    # EXIT_REQUESTED = 1, then rings its doorbell.
    EXIT_REQUESTED = 60  # process
    EXIT_CODE = 64  # process (i32)
    # Kernel: bumped when it wakes a process that waits for more completions than
    # can still come (no call outstanding). cap_enter returns on a change, so a
    # wrong ENTER_MIN can never wait forever.
    IDLE_WAKES = 68
    # Doorbells for hosts without descriptors (the browser): the process bumps
    # DOORBELL and notifies the kernel's bell; the kernel bumps WAKE and
    # notifies it (Atomics.wait on WAKE is the process's blocking wait).
    DOORBELL = 72  # process
    WAKE = 76  # kernel
    MEMORY_LIMIT_MIB = 80  # kernel, at setup: the ledger's memory budget for the host to enforce
    SIZE = 84


class RingFlags(IntEnum):
    DEAD = 1  # the process was ended; no further completions will come


class Op(IntEnum):
    """SQE opcodes. Zero is deliberately invalid so a zero-filled SQE is caught."""

    CALL = 1  # invoke method_id on cap_id with params; results into the result buffer
    RECV = 2  # on a raw Endpoint: wait for the next call
    RETURN = 3  # on a raw Endpoint: answer call_id with params as the results
    RELEASE = 4  # drop cap_id from the caller's table
    NOP = 5  # completes with result 0 (ring liveness and benchmarks)


class SqeFlags(IntEnum):
    PIPELINE = 1  # promise pipelining: named by capOS, not accepted yet (-> INVALID_SQE)
    EXCEPTION = 2  # RETURN only: params hold a CapException for the caller


class CqeFlags(IntEnum):
    CAPS = 1  # transfer-result records follow the message at caps_addr


class TransferMode(IntEnum):
    COPY = 0
    MOVE = 1


class Err(IntEnum):
    """Transport errors: negative CQE results (layer one of three).

    They mean the request never reached a live target, or the ring itself was
    misused. A failure *of* a valid target is a CapException instead.
    """

    INVALID_SQE = -1  # reserved fields set, unknown flags, pipelining requested
    UNSUPPORTED_OPCODE = -2
    INVALID_CAP = -3  # slot out of range or empty
    STALE_CAP = -4  # the slot was reused: the CapId's generation is old
    WRONG_INTERFACE = -5  # the cap is not of the interface the SQE names
    BAD_BUFFER = -6  # params, result or descriptor range outside the buffer area
    BAD_TRANSFER = -7  # malformed descriptor, unknown mode, duplicate or non-transferable cap
    QUOTA = -8  # the caller's ResourceLedger is exhausted (nothing was done)
    RESULT_TOO_SMALL = -9  # the result buffer cannot hold the answer. No authority is lost
    #                        (caps in it are rolled back) and spawn checks before acting,
    #                        but a simple kernel method such as Console.write has acted.
    BAD_CALL_ID = -10  # RETURN for a call this endpoint does not have in flight
    CORRUPT_SQ = -11  # posted with user_data 0 when sq_tail ran past sq_head + SQ_ENTRIES
    CANCELLED = -12  # a pending RECV whose endpoint owner is exiting
    KERNEL_FAULT = -13  # the kernel hit a bug on this SQE; it was contained and logged
    CALLER_GONE = -14  # RETURN for a call whose caller has ended: the answer went nowhere
    #                    (caps in it stay with the server)
    APPLICATION_EXCEPTION = -32  # a CapException is encoded in the result buffer
    APPLICATION_EXCEPTION_TRUNCATED = -33  # ... but it did not fit


# --- SQE: 64 bytes -----------------------------------------------------------
# off size field
#  0   1   opcode          Op
#  1   1   flags           SqeFlags (none accepted in v0)
#  2   2   xfer_cap_count  transfer descriptors at xfer_addr (CALL, RETURN)
#  4   4   cap_id          target CapId (CALL, RECV, RETURN, RELEASE)
#  8   8   interface_id    the interface the caller believes cap_id has (CALL, RECV,
#                          RETURN); checked against the cap table entry
# 16   2   method_id       method ordinal (CALL)
# 18   2   reserved        must be 0
# 20   4   params_len
# 24   4   params_addr     buffer-area offset of a Cap'n Proto message (CALL, RETURN)
# 28   4   result_addr     buffer-area offset the kernel writes results to (CALL, RECV)
# 32   4   result_len
# 36   4   xfer_addr       buffer-area offset of xfer_cap_count 8-byte descriptors
# 40   8   call_id         the call being answered (RETURN)
# 48   8   user_data       copied to the CQE untouched
# 56   4   pipeline_dep    capOS names these for pipelining; must be 0 in v0
# 60   2   pipeline_field
# 62   2   reserved        must be 0
SQE = struct.Struct("<BBHIQHHIIIIIQQIHH")
assert SQE.size == SQE_SIZE

# --- CQE: 32 bytes -----------------------------------------------------------
#  0   8   user_data
#  8   4   result          >= 0: bytes written to the result buffer; < 0: Err
# 12   2   flags           CqeFlags
# 14   2   cap_count       CapTransferResult records at caps_addr
# 16   8   call_id         RECV: the id to RETURN with; a RECV's RESULT_TOO_SMALL: the
#                          buffer size the waiting call needs
# 24   4   caps_addr       buffer-area offset of the records (8-aligned, after the message)
# 28   4   exception_len   APPLICATION_EXCEPTION: bytes of CapException in the result buffer
CQE = struct.Struct("<QiHHQII")
assert CQE.size == CQE_SIZE

# --- Transfer descriptor (sender side): 8 bytes ------------------------------
#  0   4   cap_id   a cap in the sender's table
#  4   1   mode     TransferMode
#  5   3   reserved must be 0
XFER = struct.Struct("<IB3s")
XFER_SIZE = XFER.size
MAX_XFER = 16  # descriptors per SQE

# --- CapTransferResult (receiver side): 16 bytes ------------------------------
#  0   4   cap_id        the new CapId in the receiver's table
#  4   4   reserved
#  8   8   interface_id  check it before adopting the cap
CAP_RECORD = struct.Struct("<IIQ")
CAP_RECORD_SIZE = CAP_RECORD.size

# --- EndpointMessageHeader: 48 bytes at the start of a RECV result -------------
#  0   8   call_id        RETURN with this
#  8   8   interface_id   what the caller believed it called
# 16   2   method_id
# 18   2   reserved
# 20   4   params_len     the caller's message follows this header
# 24   8   scoped_ref     caller session, opaque and scoped to this endpoint (low half)
# 32   8   scoped_ref_hi  (high half)
# 40   8   session_epoch  freshness of that session
# Records of caps moved or copied with the call follow the params, 8-aligned.
RECV_HEADER = struct.Struct("<QQHHIQQQ")
RECV_HEADER_SIZE = RECV_HEADER.size
assert RECV_HEADER_SIZE == 48

# --- CapSet page ----------------------------------------------------------------
#  0   4   magic
#  4   4   count
#  8   64 x count entries:
#          0 4 cap_id, 4 2 name_len, 6 2 reserved, 8 8 interface_id, 16 48 name (UTF-8)
CAPSET_HEADER = struct.Struct("<II")
CAPSET_ENTRY = struct.Struct("<IHHQ48s")
CAPSET_NAME_MAX = 48
CAPSET_MAX_ENTRIES = (PAGE_SIZE - CAPSET_HEADER.size) // CAPSET_ENTRY.size

# --- CapId: u32 = generation << 16 | slot ------------------------------------------
# Generations start at 1 and skip 0 on wrap, so CapId 0 is never valid and a
# zero-filled SQE can never name a live cap.
CAP_SLOT_BITS = 16
CAP_SLOT_MASK = (1 << CAP_SLOT_BITS) - 1
CAP_GENERATION_MASK = 0xFFFF


def make_cap_id(slot: int, generation: int) -> int:
    return (generation << CAP_SLOT_BITS) | slot


def cap_slot(cap_id: int) -> int:
    return cap_id & CAP_SLOT_MASK


def cap_generation(cap_id: int) -> int:
    return cap_id >> CAP_SLOT_BITS


def align8(n: int) -> int:
    return (n + 7) & ~7
