# A test schema for the Cap'n Proto codec: every field kind the tests cover.
@0xd4c1a37e8b5f2a91;

struct Pose {
  x @0 :Float64;
  y @1 :Float64;
  z @2 :Float64;
}

struct Reading {
  label @0 :Text;
  seq @1 :Int64;
  values @2 :List(Float64);
  ok @3 :Bool;
  blob @4 :Data;
  small @5 :Int8;
  big @6 :UInt64;
  ratio @7 :Float32;
  tags @8 :List(Text);
  pose @9 :Pose;
}
