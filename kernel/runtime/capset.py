"""Reading the read-only bootstrap CapSet the kernel wrote for this process."""

from __future__ import annotations

from dataclasses import dataclass

from kernel import abi
from kernel.region import Region


@dataclass(frozen=True, slots=True)
class CapSetEntry:
    name: str
    cap_id: int
    interface_id: int


def read_capset(region: Region) -> list[CapSetEntry]:
    """The entries in manifest order; a page we cannot read is an error, not empty."""
    page = region.read(abi.CAPSET_OFFSET, abi.PAGE_SIZE)
    magic, count = abi.CAPSET_HEADER.unpack_from(page, 0)
    if magic != abi.CAPSET_MAGIC:
        raise ValueError("no CapSet page (bad magic)")
    if count > abi.CAPSET_MAX_ENTRIES:
        raise ValueError(f"CapSet claims {count} entries")
    entries = []
    for index in range(count):
        cap_id, name_len, _, interface_id, name = abi.CAPSET_ENTRY.unpack_from(
            page, abi.CAPSET_HEADER.size + index * abi.CAPSET_ENTRY.size
        )
        entries.append(CapSetEntry(name[:name_len].decode(), cap_id, interface_id))
    return entries
