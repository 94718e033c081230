"""init: the one process the kernel starts. It spawns the manifest's services.

It holds the kernel's bootstrap caps, reads the manifest through
BootPackage in bounded chunks, and gives each service exactly the caps its
entry names: kernel caps it holds itself, client facets of earlier
services' exports, and the service's own exported endpoints. Then it waits
for them; when all have ended it exits and the system halts.
"""

from __future__ import annotations

from kernel.codec import decode
from kernel.runtime import RemoteError, Runtime

CHUNK = 4096


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


def main(rt: Runtime) -> int:
    console = rt.cap("console", "Console")
    spawner = rt.cap("processSpawner", "ProcessSpawner")
    manifest = read_manifest(rt)
    exports: dict[tuple[str, str], object] = {}
    handles = []
    for service in manifest["initConfig"]["services"]:
        grants = []
        for cap in service["caps"]:
            source = cap["source"]
            if "kernel" in source:
                held = rt.caps.get(source["kernel"])
                if held is None:
                    console.writeLine(
                        text=f"init: {service['name']}: no kernel cap "
                        f"{source['kernel']!r} on this host; skipped"
                    )
                    continue
                grants.append({"name": cap["name"], "source": {"cap": held}})
            else:
                ref = source["import"]
                grants.append(
                    {
                        "name": cap["name"],
                        "source": {"cap": exports[(ref["service"], ref["export"])]},
                    }
                )
        for export in service["exports"]:
            iface = rt.bundle.interface(export["interface"]).id
            grants.append({"name": export["name"], "source": {"newEndpoint": iface}})
        try:
            result = spawner.spawn(
                name=service["name"], binaryName=service["binary"], grants=grants
            )
        except RemoteError as exc:
            console.writeLine(text=f"init: cannot start {service['name']}: {exc}")
            continue
        for export, client in zip(service["exports"], result["clients"], strict=True):
            exports[(service["name"], export["name"])] = client
        handles.append((service["name"], result["handle"]))
    for name, handle in handles:
        code = handle.wait()["exitCode"]
        if code != 0:
            console.writeLine(text=f"init: {name} ended with status {code}")
    return 0
