"""Live sessions: the unit of ownership and of failure (see live.py).

live.py       the base every kind shares: stream, clients, input, end with a reason, and
              the task group that owns everything running for the session
qemu.py       a QEMU session: a VM from the pool, suspended when idle, restored on demand
tab.py        a tab session: a system in the owner's tab, relayed through the server
mirror.py     another replica's session, followed through Redis for viewers here
directory.py  every live session of every kind, each run by its own task
"""
