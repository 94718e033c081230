# The demo services of capOS Playground: chat, paperclips, the Aurelian
# Frontier adventure and the counter. Each is served by a resident process
# on an exported endpoint; clients hold only the client facet. Servers key
# per-visitor state by the endpoint's opaque caller-session reference, never
# by a user name.
@0xa085bbd8a261f0d2;

# --- Counter -------------------------------------------------------------------

# The smallest readable service: one number that every caller shares.
interface Counter {
  # Adds `by` (1 to 1,000,000) and returns the new value.
  increment @0 (by :UInt32) -> (value :UInt64);

  # The current value.
  get @1 () -> (value :UInt64);
}

# --- Chat ------------------------------------------------------------------------

# One chat message as a member receives it.
struct ChatMessage {
  seq @0 :UInt64;        # server-wide order, from 1
  channel @1 :Text;      # "#lobby"
  sender @2 :Text;       # "member-2": a per-session alias, never a user name
  text @3 :Text;
  replayed @4 :Bool;     # history handed out at join: old, not new input
}

# Channels of members. A member is a caller session (the endpoint's scoped
# reference), shown as <member-N>; N is assigned at the session's first join
# and kept. Channel names are "#" and 1-32 of a-z 0-9 . _ - (adventure room
# channels use "#r.<room>").
interface Chat {
  # Joins `channel` (idempotent); returns your alias and the channel's recent
  # history, labelled replayed.
  join @0 (channel :Text) -> (you :Text, history :List(ChatMessage));

  # Leaves `channel`; an empty name leaves every channel you are in.
  leave @1 (channel :Text) -> ();

  # The aliases in `channel`, in join order (empty for a channel nobody is in).
  who @2 (channel :Text) -> (members :List(Text));

  # Sends plain text (1 to 1024 bytes, no control characters) to a channel you
  # joined; every member of it, you included, receives it.
  send @3 (channel :Text, text :Text) -> (seq :UInt64);

  # Long-poll: waits until messages arrive for you, then returns them oldest
  # first; `dropped` counts messages lost to a full inbox (128). One waiting
  # call per session: a newer call, or leaving every channel, answers the
  # older one empty.
  next @4 () -> (messages :List(ChatMessage), dropped :UInt32);
}

# --- Paperclips --------------------------------------------------------------------

# What `buy` can buy. Drones, factories and probes unlock through projects.
enum PaperclipsItem {
  autoclipper @0;   # makes clips every tick from wire
  marketing @1;     # a level: more demand
  processor @2;     # more operations per tick
  memory @3;        # a higher operations ceiling
  drone @4;         # harvests wire every tick
  factory @5;       # makes clips at scale
  probe @6;         # makes clips from space matter, no wire needed
}

# One line of `help`: the server owns the command list and its gating.
struct PaperclipsCommandSpec {
  name @0 :Text;        # "buy wire"
  usage @1 :Text;       # "buy wire <spools>"
  summary @2 :Text;     # one line
  available @3 :Bool;   # false while a project still gates it
}

# Every command the game accepts, in display order.
struct PaperclipsCommandList {
  commands @0 :List(PaperclipsCommandSpec);
}

# The price of the next unit of an item.
struct PaperclipsOffer {
  item @0 :PaperclipsItem;
  costCents @1 :UInt64;
  available @2 :Bool;
}

# A game's state at one tick: what `status` renders.
struct PaperclipsStatusSnapshot {
  tick @0 :UInt64;              # seconds of simulated time, `run` included
  clips @1 :UInt64;             # made in all
  unsold @2 :UInt64;            # in inventory
  fundsCents @3 :UInt64;
  wireInches @4 :UInt64;        # one inch a clip
  priceCents @5 :UInt32;
  demandPerTick @6 :UInt64;     # clips the market takes each tick at this price
  marketingLevel @7 :UInt32;
  autoclippers @8 :UInt32;
  clipsPerTick @9 :UInt64;      # what the machines make each tick, wire allowing
  processors @10 :UInt32;
  memory @11 :UInt32;
  operations @12 :UInt64;
  maxOperations @13 :UInt64;
  drones @14 :UInt32;
  factories @15 :UInt32;
  probes @16 :UInt32;
  wireSpoolCents @17 :UInt64;   # the price of 1000 inches
  offers @18 :List(PaperclipsOffer);
}

enum PaperclipsProjectState {
  locked @0;       # an earlier project comes first
  available @1;    # can be bought once its costs are met
  done @2;
}

# A research project: spend operations (and funds) for a lasting effect.
struct PaperclipsProject {
  id @0 :UInt32;
  title @1 :Text;
  effect @2 :Text;
  costOperations @3 :UInt64;
  costCents @4 :UInt64;
  state @5 :PaperclipsProjectState;
}

# The answer to a command: what happened, and the state after it.
struct PaperclipsOutcome {
  ok @0 :Bool;          # false: refused by the game's rules (not enough funds...)
  message @1 :Text;
  status @2 :PaperclipsStatusSnapshot;
}

# A Universal-Paperclips-like game. The server owns every game (one per
# caller session), its content and its cadence: automation ticks once a
# second of Timer time, computed when a call arrives. Contract violations
# (a zero or over-limit count, an out-of-range price) raise invalidArgument;
# rule refusals come back as an outcome with ok = false.
interface PaperclipsGame {
  # The command list the client renders as `help`.
  commands @0 () -> (list :PaperclipsCommandList);

  # The current state.
  status @1 () -> (status :PaperclipsStatusSnapshot);

  # Every research project and whether it can be bought.
  projects @2 () -> (projects :List(PaperclipsProject));

  # Makes `count` clips by hand (1 to 1000), one inch of wire each.
  make @3 (count :UInt32) -> (outcome :PaperclipsOutcome);

  # Sells up to `count` unsold clips now (1 to 1,000,000), as far as this
  # second's demand goes.
  sell @4 (count :UInt32) -> (outcome :PaperclipsOutcome);

  # Sets the price of a clip (1 to 10000 cents).
  setPrice @5 (cents :UInt32) -> (outcome :PaperclipsOutcome);

  # Buys `spools` spools of 1000 inches of wire (1 to 1000).
  buyWire @6 (spools :UInt32) -> (outcome :PaperclipsOutcome);

  # Buys one of `item`.
  buy @7 (item :PaperclipsItem) -> (outcome :PaperclipsOutcome);

  # Fast-forwards `ticks` seconds of automation (1 to 10000).
  run @8 (ticks :UInt32) -> (outcome :PaperclipsOutcome);

  # The raw-text path, for `project <id>` (at most 256 bytes).
  command @9 (line :Text) -> (outcome :PaperclipsOutcome);
}

# --- Adventure ---------------------------------------------------------------------

# A room as the player sees it.
struct AdventureRoomView {
  id @0 :Text;                  # "landing"; its chat channel is "#r.landing"
  name @1 :Text;
  description @2 :Text;
  exits @3 :List(Text);         # directions
  items @4 :List(Text);         # things lying here that `take` can pick up
  features @5 :List(Text);      # fixed things worth `inspect` or `use`
}

# What the player carries, by kind.
struct AdventureInventory {
  items @0 :List(Text);
  writs @1 :List(Text);         # papers that grant passage
  relics @2 :List(Text);
  marks @3 :List(Text);         # deeds the frontier remembers
  evidence @4 :List(Text);      # clues found by inspecting
}

# Where an expedition stands.
struct AdventureStatus {
  room @0 :AdventureRoomView;
  moves @1 :UInt32;             # commands that changed something
  epoch @2 :UInt32;             # which expedition of this session, from 1
  won @3 :Bool;
  objective @4 :Text;           # the next goal, in a sentence
}

# The answer to an action.
struct AdventureOutcome {
  message @0 :Text;
  moved @1 :Bool;               # true: `room` is a new room
  room @2 :AdventureRoomView;
  won @3 :Bool;
}

# The Aurelian Frontier: a small text adventure. The server keeps one
# expedition per caller session; a client that starts shows the intro, and
# `resume` shows where the session's expedition stands. Names of things are
# at most 64 bytes (invalidArgument beyond); unknown things get a message.
interface Adventure {
  # The opening text, and whether this session's expedition is under way.
  intro @0 () -> (text :Text, underWay :Bool);

  # The current room.
  look @1 () -> (room :AdventureRoomView);

  # Moves north, south, east or west (n, s, e, w too).
  go @2 (direction :Text) -> (outcome :AdventureOutcome);

  # Picks up an item lying in the room.
  take @3 (thing :Text) -> (outcome :AdventureOutcome);

  # What you carry: items, writs, relics, marks and evidence.
  inventory @4 () -> (inventory :AdventureInventory);

  # Looks closely at a feature of the room or something you carry.
  inspect @5 (thing :Text) -> (outcome :AdventureOutcome);

  # Uses something you carry or a feature here, on `target` if not empty.
  use @6 (thing :Text, target :Text) -> (outcome :AdventureOutcome);

  # The expedition's progress.
  status @7 () -> (status :AdventureStatus);

  # Returns to the session's expedition where it was left.
  resume @8 () -> (status :AdventureStatus);

  # Abandons the expedition and starts a new one (the epoch goes up).
  restart @9 () -> (status :AdventureStatus);
}
