"""Paperclips: a small clicker economy served over capabilities.

`game` holds the rules (deterministic integers), `server` serves one game
per caller session on the `paperclips` endpoint and owns the cadence (one
tick a second of Timer time, computed when a call arrives), and `client`
renders help, status and projects for the shell's StdIO. Without a `game`
cap the client runs a game of its own, as capOS's older capture did.
"""
