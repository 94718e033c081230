"""First Chat: a resident chat-server, a terminal chat-client and an echo chat-bot.

Members are caller sessions shown as <member-N>; channels start with '#'.
`rooms` holds the rules, `server` serves them on the `chat` endpoint (with
a long-poll for new messages), `client` is the shell-launched terminal
client and `bot` a small resident actor that answers in #lobby.
"""
