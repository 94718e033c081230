"""PID 1 of a test guest that exits with input it never read (see bench/faults.py).

It shows a prompt, waits for a keystroke, stops reading while the server goes on
writing to both serial ports, and then ends, so QEMU exits with the server's bytes
unread in its sockets (which resets them rather than closing them cleanly).
"""

import os
import time
import tty

terminal = os.open("/dev/ttyS0", os.O_RDWR)
tty.setraw(terminal)
os.write(terminal, b"a guest that will exit with unread input\r\n@capos> ")
os.read(terminal, 1)
os.write(terminal, b"leaving\r\n")
time.sleep(1.0)
os._exit(0)  # PID 1 ends: the kernel panics, panic=-1 reboots, -no-reboot ends QEMU
