"""Demo programs, one folder each."""
