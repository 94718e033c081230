"""Exits at once with status 7."""

from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    return 7
