"""Sleeps until killed."""

from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    while True:
        rt.cap("timer", "Timer").sleep(ns=3_000_000_000)
