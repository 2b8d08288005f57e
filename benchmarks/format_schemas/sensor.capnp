# (b) A sensor reading of 1,000 float32 values. The values are a Data field holding
# little-endian float32 (read with numpy.frombuffer): pycapnp's List(Float32) is read
# element by element, about 70 µs per 1,000 values.
@0xb7fc2cddd5dca845;

struct Sensor {
  stamp @0 :Int64;     # ns since the epoch
  label @1 :Text;
  values @2 :Data;     # 1,000 x float32, little-endian
}
