# (c) A 1 MiB image: raw pixel bytes and their shape.
@0xebaa121eb04f2b95;

struct Image {
  stamp @0 :Int64;     # ns since the epoch
  width @1 :UInt32;
  height @2 :UInt32;
  encoding @3 :Text;   # "mono8", "rgb8", ...
  data @4 :Data;
}
