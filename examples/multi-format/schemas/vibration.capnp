@0xd1e2f3a4b5c6d7e8;

# One burst of accelerometer samples from a machine on the shop floor.
struct Vibration {
  machine @0 :Text;
  seq @1 :Int64;
  rateHz @2 :UInt32;
  samples @3 :List(Float64);
}
