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

# Output to the system console: the simplest authority a process can hold.
interface Console {
  write @0 (data :Data) -> ();          # raw bytes, at most 16 KiB a call
  writeLine @1 (text :Text) -> ();      # text and a newline
}

# The monotonic clock, and sleeps the kernel answers when they expire.
interface Timer {
  now @0 () -> (ns :UInt64);            # monotonic nanoseconds since boot
  sleep @1 (ns :UInt64) -> ();          # completes after at least ns
}

# Random bytes from the kernel's CSPRNG.
interface EntropySource {
  getRandom @0 (len :UInt32) -> (data :Data);  # at most 4096 bytes a call
}

# Facts about this system, from the boot manifest's kernelParams.
interface SystemInfo {
  motd @0 () -> (text :Text);           # the message of the day
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
    callerEndpoint @4 :UInt64;     # a fresh Endpoint owned by the caller (a shell's
                                   # @stdio): the child gets its ClientEndpoint and
                                   # the caller the raw Endpoint, in `endpoints`
  }
}

# Starts a packaged binary as a new process holding exactly the grants named.
interface ProcessSpawner {
  # freshSession: the child gets a new anonymous SessionContext instead of
  # inheriting the caller's (how init starts one shell per visitor).
  spawn @0 (name :Text, binaryName :Text, grants :List(CapGrant), freshSession :Bool)
        -> (handle :ProcessHandle, clients :List(ClientEndpoint), endpoints :List(Endpoint));
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

# A spawned child: wait for it, look at it, or end it. Not transferable.
interface ProcessHandle {
  wait @0 () -> (exitCode :Int64);   # completes at once for an exited child; one waiter
  kill @1 () -> ();                  # playground extension: ends the child, its callers see disconnected
  status @2 () -> (status :ProcessStatus);
}

# Init's read-only view of the encoded boot manifest.
interface BootPackage {
  manifestSize @0 () -> (size :UInt64);
  readManifest @1 (offset :UInt64, maxBytes :UInt32) -> (data :Data);  # at most 16 KiB
}

# --- Terminals ---------------------------------------------------------------

struct TerminalSize {
  cols @0 :UInt16;
  rows @1 :UInt16;
}

# A terminal the host attaches (a local tty, a browser xterm, a serial
# line). Bytes in, bytes out: line editing belongs to the shell.
interface TerminalSession {
  write @0 (data :Data) -> ();
  read @1 (maxBytes :UInt32) -> (data :Data, eof :Bool);  # waits for input
  size @2 () -> (size :TerminalSize);
  info @3 () -> (interactive :Bool);   # false: a pipe or script, so no echo or editing
  # Answers once the size is not `known`, at once if it already is not: a reader keeps
  # one waiting beside its read to learn of a resize while it waits for input (SIGWINCH).
  waitResize @4 (known :TerminalSize) -> (size :TerminalSize);
}

# What a shell serves a child in place of its terminal: the shell keeps the
# TerminalSession. `read` returns one line (without its newline) at a time.
interface StdIO {
  write @0 (data :Data) -> ();
  read @1 (maxBytes :UInt32) -> (data :Data, eof :Bool);
  readLine @2 (prompt :Text, hidden :Bool) -> (line :Text, eof :Bool);
  # hidden: the shell does not echo what is typed (a password); the line is not kept in history
}

# --- Sessions: who a shell acts for (policy, never authority) ----------------

enum Profile {
  anonymous @0;
  guest @1;
  operator @2;
}

struct SessionInfo {
  profile @0 :Profile;
  username @1 :Text;              # empty unless operator
  sessionId @2 :Data;             # 16 bytes from the kernel CSPRNG
  delegationChain @3 :List(Text); # how it was minted, oldest first
}

# A session the SessionManager issued; show it to the broker for a bundle.
interface UserSession {
  info @0 () -> (info :SessionInfo);
  # Ends the session: every cap the broker issued for it, in this shell or copied to its
  # children, fails with disconnected from then on.
  logout @1 () -> ();
}

struct LoginResult {
  union {
    session @0 :UserSession;
    refused @1 :Text;             # why, safe to show (never which part was wrong)
  }
}

# Authentication proves or selects a principal; it grants nothing by itself.
interface SessionManager {
  anonymous @0 () -> (session :UserSession);   # the profile every shell starts in
  guest @1 () -> (result :LoginResult);         # the guest profile: no service endpoints
  login @2 (username :Text, password :Text) -> (result :LoginResult);  # rate-limited
  # Creates a volatile operator credential, then logs in with it.
  setup @3 (username :Text, password :Text) -> (result :LoginResult);
}

# Password verifiers (scrypt); volatile: they live until the system halts.
interface CredentialStore {
  hasAccount @0 (username :Text) -> (exists :Bool);  # verifiers never leave the store
}

struct NamedCap {
  name @0 :Text;
  cap @1 :Capability;
}

# Mints the cap bundle a session's shell may hold: its profile decides what.
interface AuthorityBroker {
  shellBundle @0 (session :UserSession) -> (caps :List(NamedCap));  # the session, then its profile's caps
}

# Init's side of the broker: what goes into which profile's bundle.
interface BrokerAdmin {
  offer @0 (name :Text, cap :Capability, profiles :List(Profile)) -> ();  # replaces an offer of that name
}

# --- The manual -------------------------------------------------------------------

struct ManualPage {
  topic @0 :Text;
  section @1 :Text;    # "commands", "interfaces", "demos", "concepts"
  summary @2 :Text;    # one line, for apropos
  body @3 :Text;
}

# The system manual: backs the shell's `man` and `apropos`.
interface Manual {
  page @0 (topic :Text) -> (result :ManualLookup);
  apropos @1 (word :Text) -> (pages :List(ManualPage));   # bodies left empty
  topics @2 () -> (pages :List(ManualPage));              # bodies left empty
}

struct ManualLookup {
  union {
    page @0 :ManualPage;
    notFound @1 :List(Text);   # close matches
  }
}

# --- Diagnostics ---------------------------------------------------------------

# The smallest possible service: benchmarks and health checks round-trip it.
interface Echo {
  echo @0 (data :Data) -> (data :Data);
}

# --- Language models ---------------------------------------------------------------

# A model is an ordinary capability: whoever holds it can ask for completions,
# and it holds no caps of its own. The runner that asked (the shell's agent
# mode) executes any tool call itself, with the caps it holds.

enum ChatRole {
  system @0;
  user @1;
  assistant @2;
  tool @3;             # a tool call's result, answering `toolCallId`
}

# One call the model proposes. `name` is a tool descriptor's name: the model
# never sees a CapId, only names the runner chose.
struct ToolCall {
  id @0 :Text;                 # unique within the conversation
  name @1 :Text;
  argumentsJson @2 :Text;      # as the model wrote it: the runner checks it
}

struct ChatMessage {
  role @0 :ChatRole;
  content @1 :Text;
  toolCalls @2 :List(ToolCall);  # role assistant: the calls it proposed
  toolCallId @3 :Text;           # role tool: the call this answers
}

# What the model may call: derived by the runner from a capnp method.
struct ToolDescriptor {
  name @0 :Text;               # "counter.increment": a cap name and a method
  description @1 :Text;
  parametersJson @2 :Text;     # JSON Schema of the method's params struct
}

struct GenerateParams {
  maxTokens @0 :UInt32 = 256;
  temperature @1 :Float32 = 0.0;
}

struct ModelInfo {
  modelId @0 :Text;            # e.g. "SmolLM2-135M-Instruct"
  provider @1 :Text;           # e.g. "local llama.cpp, 1 thread" or an endpoint's host
  local @2 :Bool;              # runs on this machine, with no network
  contextTokens @3 :UInt32;
  note @4 :Text;               # what a person should know about it
}

struct TokenUsage {
  promptTokens @0 :UInt32;
  completionTokens @1 :UInt32;
}

# One streamed event. A stream ends with exactly one `done` or `error`.
struct CompletionEvent {
  union {
    textDelta @0 :Text;
    toolCall @1 :ToolCall;
    usage @2 :TokenUsage;
    done @3 :Text;             # the stop reason: "stop", "tool_calls", "length", "cancelled"
    error @4 :Text;            # the provider failed; what went wrong and what to do
  }
}

# capOS would hand back a CompletionStream cap per generation; ABI v0 processes
# cannot mint endpoints at run time, so a stream is a number valid only for
# the session that started it.
interface LanguageModel {
  info @0 () -> (info :ModelInfo);
  generate @1 (messages :List(ChatMessage), tools :List(ToolDescriptor), params :GenerateParams)
           -> (stream :UInt64);
  next @2 (stream :UInt64) -> (events :List(CompletionEvent));  # waits for at least one
  cancel @3 (stream :UInt64) -> ();    # the stream ends with done("cancelled")
}

# --- Outside agents: MCP clients and the REST API -----------------------------

# One request from an outside agent, queued by the host for the shell that
# serves the session. The shell answers it with its own caps and the same
# checks a person typing at it gets: names are the shell's (`caps` lists
# them), and an agent never sees a CapId.
struct AgentRequest {
  id @0 :UInt32;               # chosen by the host, echoed in the response
  union {
    listCaps @1 :Void;         # answers `caps`
    describeCap @2 :Text;      # a held cap's name; answers `json`: its methods, as JSON Schema
    call @3 :AgentCall;        # answers `json`: the results
    spawn @4 :AgentSpawn;      # answers `json`: the child's job and pid, and what the shell kept
    guest @5 :Void;            # selects the guest profile, as `guest` typed at the shell does:
                               # the broker's guest bundle replaces the session's; answers `caps`
  }
}

struct AgentCall {
  cap @0 :Text;
  method @1 :Text;
  paramsJson @2 :Text;         # a JSON object, checked against the params struct;
                               # {"$cap": "name"} passes a cap the shell holds
  bind @3 :Text;               # keep caps in the results under this name ("": release them)
}

struct AgentSpawn {
  binary @0 :Text;
  # A JSON object, one member a grant: "name" copies that cap, {"move": "name"}
  # moves it, {"client": "name"} grants the client facet of an endpoint (and
  # {"client": "stdio"} a StdIO the shell serves), {"new": "Interface"} a fresh
  # endpoint the child serves, whose client the shell keeps.
  grantsJson @1 :Text;
  wait @2 :Bool;               # answer once the child exits, with its exit code
}

struct HeldCap {
  name @0 :Text;
  interface @1 :Text;
  origin @2 :Text;             # "bundle", "let", "alias"
}

struct AgentError {
  # "input": refused before anything was sent (an unknown cap, method or parameter,
  # a value that does not fit the schema); "capException": the target raised one
  # (`type` names its ExceptionType); "transport": the kernel refused the call
  # (`type` names the code); "busy": the shell did not take the request in time;
  # "gone": the shell ended before it answered.
  kind @0 :Text;
  type @1 :Text;
  message @2 :Text;
}

struct AgentResponse {
  id @0 :UInt32;
  union {
    caps @1 :List(HeldCap);
    json @2 :Text;
    error @3 :AgentError;
  }
}

# The shell's side of outside agents: the host queues requests, the shell
# takes them one at a time and answers each. The port itself grants nothing:
# an agent can do only what the shell serving it holds.
interface AgentPort {
  next @0 () -> (request :AgentRequest);      # waits for one
  reply @1 (response :AgentResponse) -> ();   # answers a request this process took
}

# --- Monitoring: capability-scoped views of a live system ----------------------

enum LogLevel {
  debug @0;
  info @1;
  warn @2;
  error @3;
}

# Where a process writes log records. The kernel stamps each record with the
# writer's pid and the time; a writer cannot speak for another process.
interface Log {
  write @0 (level :LogLevel, text :Text) -> ();   # at most 1 KiB of text a record
}

struct LogRecord {
  seq @0 :UInt64;          # position in the monitor's change stream
  atNs @1 :UInt64;         # nanoseconds since boot
  pid @2 :UInt32;
  process @3 :Text;
  level @4 :LogLevel;
  text @5 :Text;
}

# One call in the bounded IPC trace: CALL submitted to completion posted.
struct CallRecord {
  seq @0 :UInt64;
  atNs @1 :UInt64;         # when the CALL was submitted
  callerPid @2 :UInt32;    # 0: a process outside the viewer's scope
  calleePid @3 :UInt32;    # 0: served by the kernel
  interface @4 :Text;
  method @5 :Text;
  latencyNs @6 :UInt64;
  result @7 :Text;         # "ok", "exception" or the transport error's name
}

struct LedgerUsage {
  resource @0 :Text;
  used @1 :UInt64;
  limit @2 :UInt64;
}

struct ErrorCount {
  code @0 :Int32;          # a negative CQE result
  name @1 :Text;
  count @2 :UInt64;
}

# The ring's counters, kept by the kernel for one process.
struct RingCounters {
  enters @0 :UInt64;       # cap_enter dispatches
  sqes @1 :UInt64;         # submissions consumed (mod 2^32)
  cqes @2 :UInt64;         # completions posted (mod 2^32)
  cqOverflow @3 :UInt64;   # completions that found the CQ full
  sqCorruptions @4 :UInt64;
  errors @5 :List(ErrorCount);
}

# One slot of a cap table: a hold edge from its process to an object.
struct CapSlot {
  capId @0 :UInt32;
  name @1 :Text;           # its CapSet name, or "" for a cap received later
  interface @2 :Text;
  object @3 :Text;         # what the object is, in words
  objectId @4 :Text;       # stable while the object lives: the node of the authority graph
  servedBy @5 :UInt32;     # the pid serving it (0: the kernel)
  origin @6 :Text;         # kernel, spawn_grant, ipc_transfer, result_cap
  transfer @7 :Text;       # copy, move, non_transferable
  revoked @8 :Text;        # why a call through it now fails ("" while calls go through)
}

struct ProcessInfo {
  pid @0 :UInt32;
  name @1 :Text;
  binary @2 :Text;
  parentPid @3 :UInt32;    # 0: none (init)
  state @4 :Text;          # running
  startNs @5 :UInt64;
  counters @6 :RingCounters;
  ledger @7 :List(LedgerUsage);
  caps @8 :List(CapSlot);
}

struct EndpointInfo {
  objectId @0 :Text;
  ownerPid @1 :UInt32;
  interface @2 :Text;
  queuedCalls @3 :UInt32;  # calls waiting for a RECV
  waitingReceives @4 :UInt32;
  inFlight @5 :UInt32;     # delivered, not yet answered
}

# How a process ended, kept after it is gone.
struct ExitRecord {
  seq @0 :UInt64;
  pid @1 :UInt32;
  name @2 :Text;
  binary @3 :Text;
  parentPid @4 :UInt32;
  kind @5 :Text;           # "exited", "killed" or "crashed"
  code @6 :Int64;
  reason @7 :Text;
  startNs @8 :UInt64;
  endNs @9 :UInt64;
  counters @10 :RingCounters;
  lastCalls @11 :List(CallRecord);   # its most recent calls, oldest first
}

# Everything a monitor sees at one moment, as one message (a host can ship it whole).
struct MonitorSnapshot {
  seq @0 :UInt64;          # changes(since = seq) continues from here
  uptimeNs @1 :UInt64;
  scopePid @2 :UInt32;     # 0: the whole system; else the subtree rooted here
  processes @3 :List(ProcessInfo);
  endpoints @4 :List(EndpointInfo);
  exits @5 :List(ExitRecord);
  calls @6 :List(CallRecord);
  logs @7 :List(LogRecord);
  tracing @8 :Bool;        # false: the kernel keeps no IPC trace now
}

# What happened after a point in the change stream.
struct MonitorChanges {
  seq @0 :UInt64;          # pass as `since` next time
  started @1 :List(ProcessInfo);
  exits @2 :List(ExitRecord);
  calls @3 :List(CallRecord);
  logs @4 :List(LogRecord);
  missed @5 :Bool;         # some records fell out of the bounded buffers meanwhile
}

# A view of the running system: processes, who holds what, calls, logs and
# exits. It shows only its scope; `subtree` hands out a narrower view, never
# a wider one. Calls on a SystemMonitor are not traced (a view does not watch itself).
interface SystemMonitor {
  # The current state, with up to maxCalls recent calls and maxLogs recent logs.
  snapshot @0 (maxCalls :UInt32, maxLogs :UInt32) -> (snapshot :MonitorSnapshot);
  # What is newer than `since`; waits up to waitNs (at most 60 s) for something.
  changes @1 (since :UInt64, waitNs :UInt64) -> (changes :MonitorChanges);
  # A view of the process `pid` (in this view's scope) and its descendants.
  subtree @2 (pid :UInt32) -> (monitor :SystemMonitor);
}
