"""init: the one process the kernel starts. It spawns the manifest's services.

It holds the kernel's bootstrap caps, reads the manifest through
BootPackage in bounded chunks, and gives each service exactly the caps its
entry names: kernel caps it holds itself, client facets of earlier
services' exports, and the service's own exported endpoints. It offers the
broker what shells may receive, as soon as each offer's source exists.
Then it waits for the services; when all have ended it exits and the
system halts.
"""

from __future__ import annotations

import contextlib

from kernel.codec import decode
from kernel.runtime import Cap, Pending, RemoteError, Runtime, TransportFailure

CHUNK = 4096
LOG_RESULT = 256  # room for a Log.write answer (empty) or a short CapException
LOGS_IN_FLIGHT = 16
LOG_TEXT_MAX = 1024  # what Log.write accepts


def read_manifest(rt: Runtime) -> dict:
    boot = rt.cap("bootPackage", "BootPackage")
    size = boot.manifestSize()["size"]
    data = bytearray()
    while len(data) < size:
        chunk = rt.call(
            boot, "readManifest", {"offset": len(data), "maxBytes": CHUNK}, result_size=CHUNK + 256
        )["data"]
        if not chunk:
            break
        data += chunk
    return decode(rt.bundle.struct("SystemManifest"), bytes(data))


class Init:
    def __init__(self, rt: Runtime, manifest: dict) -> None:
        self.rt = rt
        self.console = rt.cap("console", "Console")
        self.logger = rt.caps.get("log")  # the kernel log, where a host has one
        self.logging: list[Pending] = []  # log writes in flight: nothing waits on them
        self.manifest = manifest
        self.exports: dict[tuple[str, str], Cap] = {}
        self.handles: list[tuple[str, Cap]] = []
        self.offers = list(manifest["initConfig"]["bundles"])
        self.required = {
            b["name"]: {c["name"] for c in b["caps"] if not c["optional"]}
            for b in manifest["binaries"]
        }
        self.skipped: set[str] = set()  # services this host cannot run: their offers lapse

    def say(self, text: str, level: str = "warn") -> None:
        self.console.writeLine(text=f"init: {text}")
        self.log(level, text)

    def log(self, level: str, text: str) -> None:
        """Submit a record; the next call's cap_enter carries it (no round trip of its own)."""
        if self.logger is None:
            return
        params = {"level": level, "text": text[:LOG_TEXT_MAX]}
        self.logging.append(self.rt.begin(self.logger, "write", params, result_size=LOG_RESULT))
        if len(self.logging) >= LOGS_IN_FLIGHT:
            self.collect_logs()

    def collect_logs(self) -> None:
        for pending in self.logging:
            with contextlib.suppress(RemoteError, TransportFailure):  # a log is best effort
                self.rt.result(pending)
        self.logging.clear()

    def source(self, source: dict) -> Cap | None:
        """The cap a CapSource names, or None if it does not exist (yet)."""
        if "kernel" in source:
            return self.rt.caps.get(source["kernel"])
        if "terminal" in source:
            return self.rt.caps.get(source["terminal"])
        ref = source["import"]
        return self.exports.get((ref["service"], ref["export"]))

    def offer_ready_bundles(self) -> None:
        admin = self.rt.caps.get("brokerAdmin")
        for offer in list(self.offers):
            cap = self.source(offer["cap"]["source"])
            if cap is None or admin is None:
                continue
            self.offers.remove(offer)
            admin.offer(name=offer["cap"]["name"], cap=cap, profiles=offer["profiles"])

    def start(self, service: dict) -> None:
        grants = []
        for cap in service["caps"]:
            held = self.source(cap["source"])
            if held is None and cap["name"] in self.required.get(service["binary"], ()):
                what = cap["source"].get("kernel") or cap["name"]
                # a host without this device (a tab has no model) is expected, not a fault
                self.say(f"{service['name']}: not started (this host provides no {what})", "info")
                self.skipped.add(service["name"])
                return
            if held is None:
                self.say(
                    f"{service['name']}: {cap['name']!r} is not available on this host; "
                    "starting without it"
                )
                continue
            grants.append({"name": cap["name"], "source": {"cap": held}})
        for export in service["exports"]:
            iface = self.rt.bundle.interface(export["interface"]).id
            grants.append({"name": export["name"], "source": {"newEndpoint": iface}})
        spawner = self.rt.cap("processSpawner", "ProcessSpawner")
        try:
            result = spawner.spawn(
                name=service["name"],
                binaryName=service["binary"],
                grants=grants,
                freshSession=service["freshSession"],
            )
        except RemoteError as exc:
            self.say(f"cannot start {service['name']}: {exc}")
            return
        for export, client in zip(service["exports"], result["clients"], strict=True):
            self.exports[(service["name"], export["name"])] = client
        self.handles.append((service["name"], result["handle"]))
        self.log("info", f"started {service['name']} ({service['binary']})")

    def run(self) -> int:
        for service in self.manifest["initConfig"]["services"]:
            self.offer_ready_bundles()
            self.start(service)
        self.offer_ready_bundles()
        for offer in self.offers:
            if offer["cap"]["source"].get("import", {}).get("service") in self.skipped:
                continue
            self.say(f"bundle offer {offer['cap']['name']!r}: its source never appeared")
        self.collect_logs()
        for name, handle in self.handles:
            code = handle.wait()["exitCode"]
            if code != 0:
                self.say(f"{name} ended with status {code}")
        return 0


def main(rt: Runtime) -> int:
    return Init(rt, read_manifest(rt)).run()
