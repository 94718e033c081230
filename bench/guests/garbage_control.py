"""PID 1 of a test guest that breaks its control channel (see bench/faults.py).

It shows a prompt, waits for a keystroke, then sends the server a control frame that
is well framed but unreadable (its root pointer points far outside its one segment,
so pycapnp raises reading it) followed by random bytes; then it idles.
"""

import os
import struct
import time
import tty

terminal = os.open("/dev/ttyS0", os.O_RDWR)
control = os.open("/dev/ttyS1", os.O_RDWR | os.O_NOCTTY)
tty.setraw(terminal)
tty.setraw(control)
os.write(terminal, b"a guest that breaks its control channel\r\n@capos> ")
os.read(terminal, 1)
unreadable = struct.pack("<II", 0, 2) + struct.pack("<Q", (1000 << 2) | (1 << 32)) + bytes(8)
os.write(control, unreadable + os.urandom(512))
os.write(terminal, b"sent\r\n")
while True:  # PID 1 must not return
    time.sleep(3600)
