@0xe1a2b3c4d5e6f708;

struct Reading {
  label @0 :Text;
  value @1 :Float64;
}
