"""System programs: each module's `main(runtime) -> int` runs as a process."""
