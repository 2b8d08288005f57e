# Bad on purpose: a syntax error.
@0xe1c2a37e8b5f2a92;

struct Reading {
  label @0 :Text
  seq @1 Int64;
}
