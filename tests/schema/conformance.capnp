# Test-only schema: exercises every feature the pure-Python codec must handle.
# Its bundle is compiled at test time (never committed).
@0xb3a7c0de5eed1234;

enum Color {
  red @0;
  green @1;
  blue @2;
}

interface Widget {
  poke @0 (n :UInt8, label :Text) -> (ok :Bool, echo :List(Text));
  spawn @1 () -> (child :Widget);
}

struct Inner {
  a @0 :UInt32;
  b @1 :Text;
  c @2 :Int16 = -5;
}

struct Primitives {
  v @0 :Void;
  b @1 :Bool;
  i8 @2 :Int8;
  i16 @3 :Int16;
  i32 @4 :Int32;
  i64 @5 :Int64;
  u8 @6 :UInt8;
  u16 @7 :UInt16;
  u32 @8 :UInt32;
  u64 @9 :UInt64;
  f32 @10 :Float32;
  f64 @11 :Float64;
  t @12 :Text;
  d @13 :Data;
  e @14 :Color;
  b2 @15 :Bool;
  b3 @16 :Bool;
}

struct Defaults {
  b @0 :Bool = true;
  i8 @1 :Int8 = -123;
  i16 @2 :Int16 = -12345;
  i32 @3 :Int32 = -12345678;
  i64 @4 :Int64 = -123456789012345;
  u8 @5 :UInt8 = 234;
  u16 @6 :UInt16 = 45678;
  u32 @7 :UInt32 = 3456789012;
  u64 @8 :UInt64 = 12345678901234567890;
  f32 @9 :Float32 = 1234.5;
  f64 @10 :Float64 = -123e45;
  t @11 :Text = "foo";
  d @12 :Data = 0x"62 61 72";
  e @13 :Color = blue;
  s @14 :Inner = (a = 7, b = "seven");
  l @15 :List(Int32) = [1, -2, 3];
  lt @16 :List(Text) = ["x", "yz"];
  ls @17 :List(Inner) = [(a = 1), (b = "two", c = 3)];
  bFalse @18 :Bool = false;
  f64inf @19 :Float64 = inf;
  f32neg @20 :Float32 = -0.25;
  v @21 :Void = void;
  lb @22 :List(Bool) = [true, false, true];
  u :union {
    dflt @23 :UInt16 = 77;
    other @24 :Text = "other";
  }
}

struct Unions {
  id @0 :UInt32;
  union {
    none @1 :Void;
    num @2 :Int64;
    text @3 :Text;
    inner @4 :Inner;
    flag @5 :Bool;
  }
  named :union {
    x @6 :UInt8;
    y @7 :Float64;
    z @8 :List(UInt16);
  }
  grp :group {
    g1 @9 :Int32 = 9;
    sub :group {
      deep @10 :Text;
      deeper :union {
        p @11 :UInt16;
        q @12 :Data;
        r :group {
          r1 @13 :Bool;
          r2 @14 :Int8 = -1;
        }
      }
    }
  }
}

struct Lists {
  lv @0 :List(Void);
  lb @1 :List(Bool);
  li8 @2 :List(Int8);
  lu16 @3 :List(UInt16);
  li32 @4 :List(Int32);
  lu64 @5 :List(UInt64);
  lf32 @6 :List(Float32);
  lf64 @7 :List(Float64);
  lt @8 :List(Text);
  ld @9 :List(Data);
  ls @10 :List(Inner);
  lll @11 :List(List(Int32));
  lllt @12 :List(List(Text));
  le @13 :List(Color);
  lc @14 :List(Widget);
  lu @15 :List(Unions);
  lu8 @16 :List(UInt8);
  li16 @17 :List(Int16);
  lu32 @18 :List(UInt32);
  li64 @19 :List(Int64);
  lp @20 :List(Primitives);
}

struct Caps {
  w @0 :Widget;
  c @1 :Capability;
  name @2 :Text;
  u :union {
    a @3 :Widget;
    b @4 :Void;
  }
  lc @5 :List(Widget);
}

struct Outer {
  struct Nested {
    n @0 :UInt8;
    e @1 :Color;
    struct Deepest {
      z @0 :Float32;
    }
    d @2 :Deepest;
  }
  nested @0 :Nested;
  inner @1 :Inner;
  self @2 :Outer;
  defaulted @3 :Nested = (n = 3, e = green, d = (z = 1.5));
}

struct Empty {}

struct PointerOnly {
  t @0 :Text;
  e @1 :Empty;
}
