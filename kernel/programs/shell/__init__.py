"""The native capability shell: an ordinary process holding a TerminalSession."""
