"""Serves its endpoint for one call, then raises: a crash, not an exit."""

from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    rt.recv(rt.cap("svc", "Endpoint"))  # take a call and never answer it
    raise RuntimeError("deliberate crash")
