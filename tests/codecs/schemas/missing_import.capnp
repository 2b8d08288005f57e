# Bad on purpose: imports a file that does not exist.
@0xf2c3a37e8b5f2a93;

using Other = import "does_not_exist.capnp";

struct Reading {
  other @0 :Other.Thing;
}
