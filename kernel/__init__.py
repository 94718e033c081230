"""capOS Playground kernel: pure Python, standard library only, so it runs in Pyodide too."""
