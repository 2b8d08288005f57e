# Bad on purpose: the @0x... file id is missing (pycapnp aborts the process on this).
struct Reading {
  label @0 :Text;
}
