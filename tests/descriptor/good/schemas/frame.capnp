@0xc5f3a1b2d4e69788;

struct Frame {
  width @0 :UInt32;
  height @1 :UInt32;
  pixels @2 :Data;
}
