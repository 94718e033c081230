# capOS Playground ABI v0: the interfaces the kernel serves and the messages
# that cross the ring. Interface ids are the ones the capnp compiler assigns;
# the compiled bundle (bundle.json) is what the pure-Python codec runs on.
@0xd50d4fda9e52d9f6;

# --- Errors (second layer: a valid target that failed) ---------------------

enum ExceptionType {
  failed @0;           # the target hit an internal failure
  overloaded @1;       # a quota or queue is full; retrying later may work
  disconnected @2;     # the object is gone (its server died or it was revoked)
  unimplemented @3;    # no such method on this interface
  invalidArgument @4;  # capOS-only: the params broke the documented contract
}

struct CapException {
  type @0 :ExceptionType;
  message @1 :Text;    # diagnostic only: never pointers or another process's state
}

# --- Kernel services --------------------------------------------------------

interface Console {
  write @0 (data :Data) -> ();
  writeLine @1 (text :Text) -> ();
}

interface Timer {
  now @0 () -> (ns :UInt64);            # monotonic nanoseconds since boot
  sleep @1 (ns :UInt64) -> ();          # completes after at least ns
}

interface EntropySource {
  getRandom @0 (len :UInt32) -> (data :Data);  # at most 4096 bytes a call
}

interface SystemInfo {
  motd @0 () -> (text :Text);
  hostname @1 () -> (name :Text);
}

# --- IPC --------------------------------------------------------------------

# The raw endpoint: its owner RECVs and RETURNs through ring opcodes, so the
# interface has no methods. The kernel never hands this to importers.
interface Endpoint {}

# The facet importers hold: it can only CALL.
interface ClientEndpoint {}

# --- Processes --------------------------------------------------------------

# One named capability handed to a child at spawn. The child sees exactly
# these, by name, in its read-only CapSet.
struct CapGrant {
  name @0 :Text;
  source :union {
    cap @1 :Capability;            # copy a cap the caller holds
    clientOf @2 :Endpoint;         # the ClientEndpoint facet of an Endpoint the caller holds
    newEndpoint @3 :UInt64;        # a fresh Endpoint owned by the child, serving the
                                   # interface with this id (0: untyped); the caller
                                   # receives its ClientEndpoint in `clients`
  }
}

interface ProcessSpawner {
  spawn @0 (name :Text, binaryName :Text, grants :List(CapGrant))
        -> (handle :ProcessHandle, clients :List(ClientEndpoint));
}

struct ProcessStatus {
  pid @0 :UInt32;
  name @1 :Text;
  binaryName @2 :Text;
  state :union {
    running @3 :Void;
    exited @4 :Int64;     # exit code
    killed @5 :Text;      # why the kernel ended it
  }
}

interface ProcessHandle {
  wait @0 () -> (exitCode :Int64);   # completes at once for an exited child; one waiter
  kill @1 () -> ();                  # playground extension: ends the child, its callers see disconnected
  status @2 () -> (status :ProcessStatus);
}

interface BootPackage {
  manifestSize @0 () -> (size :UInt64);
  readManifest @1 (offset :UInt64, maxBytes :UInt32) -> (data :Data);
}

# --- Terminals ---------------------------------------------------------------

struct TerminalSize {
  cols @0 :UInt16;
  rows @1 :UInt16;
}

# A terminal the host attaches (a local tty, a browser xterm, a serial line).
interface TerminalSession {
  write @0 (data :Data) -> ();
  read @1 (maxBytes :UInt32) -> (data :Data, eof :Bool);  # waits for input
  size @2 () -> (size :TerminalSize);
}

# What a shell serves a child in place of its terminal.
interface StdIO {
  write @0 (data :Data) -> ();
  read @1 (maxBytes :UInt32) -> (data :Data, eof :Bool);
}

# --- Diagnostics ---------------------------------------------------------------

# The smallest possible service: benchmarks and health checks round-trip it.
interface Echo {
  echo @0 (data :Data) -> (data :Data);
}
