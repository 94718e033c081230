"""Aurelian Frontier: a small text adventure served over capabilities.

`world` holds the map and the rules of one expedition, `server` keeps one
expedition per caller session on the `adventure` endpoint, and `client`
is the shell-launched terminal client (with an optional `chat` cap it
also talks in the room's channel, "#r.<room>").
"""
