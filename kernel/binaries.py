"""The boot package's binaries: which module runs, and the CapSet it expects.

A binary may declare the caps it expects by name and interface. Spawn
then refuses grants that do not fit, before the child exists, with a
message that names the grant: the runtime would refuse a wrongly typed
cap anyway, but only after the child had started and failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kernel.codec import Bundle
from kernel.errors import CapError

MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class ExpectedCap:
    interface_id: int
    interface: str
    optional: bool


@dataclass(frozen=True)
class BinarySpec:
    name: str
    module: str
    caps: dict[str, ExpectedCap] = field(default_factory=dict)  # empty: not declared

    def check_grants(self, grants: dict[str, int], bundle: Bundle) -> None:
        """`grants` maps each granted name to the interface the child will see it as."""
        if not self.caps:
            return
        for name, interface_id in grants.items():
            expected = self.caps.get(name)
            if expected is None:
                takes = ", ".join(self.caps)
                raise CapError.invalid_argument(
                    f"{self.name} takes no cap named {name!r} (it takes: {takes})"
                )
            if interface_id != expected.interface_id:
                raise CapError.invalid_argument(
                    f"grant {name!r} is a {_name(bundle, interface_id)}; {self.name} expects "
                    f"a {expected.interface}"
                )
        missing = [
            f"{n} ({e.interface})"
            for n, e in self.caps.items()
            if not e.optional and n not in grants
        ]
        if missing:
            raise CapError.invalid_argument(f"{self.name} needs {', '.join(missing)}")


def _name(bundle: Bundle, interface_id: int) -> str:
    try:
        return bundle.interface_by_id(interface_id).name
    except KeyError:
        return f"cap of interface {interface_id:#x}"


def read_binaries(manifest: dict, bundle: Bundle) -> dict[str, BinarySpec]:
    """The manifest's binaries, checked; raises ValueError naming a bad entry."""
    binaries: dict[str, BinarySpec] = {}
    for binary in manifest["binaries"]:
        name = binary["name"]
        if not MODULE_RE.match(binary["module"]):
            raise ValueError(f"binary {name!r}: {binary['module']!r} is not a module name")
        caps = {}
        for cap in binary["caps"]:
            try:
                interface = bundle.interface(cap["interface"])
            except KeyError:
                raise ValueError(
                    f"binary {name!r}: cap {cap['name']!r} names no interface {cap['interface']!r}"
                ) from None
            caps[cap["name"]] = ExpectedCap(interface.id, interface.name, cap["optional"])
        binaries[name] = BinarySpec(name, binary["module"], caps)
    return binaries
