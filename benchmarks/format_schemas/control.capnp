# (a) A small control message: the same fields in control.fbs and control.avsc.
@0xe2e3f99526aa5607;

struct Control {
  seq @0 :Int64;
  vx @1 :Float64;      # target velocity, m/s
  vy @2 :Float64;
  vz @3 :Float64;
  mode @4 :Text;       # "hover", "track", ...
  armed @5 :Bool;
}
