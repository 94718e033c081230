"""Counter: the smallest readable demo service, and its terminal client.

`server` serves one shared number on the `counter` endpoint; `client`
reads `inc [n]`, `get` and `exit` from the shell's StdIO.
"""
