# The control channel between the server and a guest kernel in a QEMU VM: a
# second serial port carrying everything that is not terminal bytes. The
# server speaks it with pycapnp, the guest with the project's own codec.
#
# Framing on the wire: each message is a standard Cap'n Proto stream frame
# (segment table, then segments). The server sends ControlRequests; the guest
# answers each with exactly one ControlResponse carrying the same id, and may
# answer out of order. New calls (monitoring, agent access) are new union
# members on both sides; an unknown member is answered with `error`.
@0x96f87b83b4a815d4;

using Capos = import "capos.capnp";

struct ControlRequest {
  id @0 :UInt32;            # chosen by the server, echoed in the response
  union {
    ping @1 :Void;          # is the guest kernel serving? answers `pong`
    resize @2 :Capos.TerminalSize;  # the console's new size; answers `done`
    shutdown @3 :Void;      # end every process and power off; answers `done` first
    reseed @4 :Data;        # fresh entropy for the guest's RNG, forced into use at once:
                            # sent to each VM restored from the pool's shared snapshot,
                            # so clones stop drawing the same random numbers
    monitor @5 :MonitorRequest;  # the whole system as the kernel's SystemMonitor sees it;
                                 # answers `snapshot`
    agent @6 :Capos.AgentRequest;  # an outside agent's request, served by the session's
                                   # shell (its id is ignored: the guest uses this one);
                                   # answers `agent`, when the shell has answered
    modelWork @7 :Void;     # the generations the guest's kernel wants started or cancelled
                            # on the server's model; answers `modelWork` once there are any
                            # (a later modelWork replaces a waiting one)
    modelEvents @8 :ModelEvents;  # what the server's model produced for one; answers `done`
  }
}

struct MonitorRequest {
  maxCalls @0 :UInt32;      # the most recent calls to include
  maxLogs @1 :UInt32;       # the most recent log records to include
}

struct ControlResponse {
  id @0 :UInt32;
  union {
    done @1 :Void;
    pong @2 :Pong;
    error @3 :Text;         # the request failed or is unknown; says why
    snapshot @4 :Data;      # a Capos.MonitorSnapshot message, zlib-compressed: the serial
                            # line runs at 115200 baud, and snapshots repeat themselves
    agent @5 :Capos.AgentResponse;
    modelWork @6 :ModelWork;
  }
}

struct Pong {
  uptimeNs @0 :UInt64;      # since the guest kernel booted
  processes @1 :UInt32;     # live capOS processes
}

# Agent mode in a guest: the kernel's LanguageModel cap is served by the server's
# model (the guest has no model files and no network). The guest learns which
# model answers from its kernel command line (capos.model=, base64url JSON
# ModelInfo) at boot; generations then cross this channel.
struct ModelWork {
  starts @0 :List(ModelStart);
  cancels @1 :List(UInt64);
}

struct ModelStart {
  stream @0 :UInt64;        # the guest kernel's number for it
  messages @1 :List(Capos.ChatMessage);
  tools @2 :List(Capos.ToolDescriptor);
  params @3 :Capos.GenerateParams;
}

struct ModelEvents {
  stream @0 :UInt64;
  events @1 :List(Capos.CompletionEvent);
}
