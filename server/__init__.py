"""The host side of capOS Playground: command line, and later the web server."""
