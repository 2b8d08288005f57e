# (b) A sensor reading of 1,000 float32 values, as a typed list: the same typed float array
# as sensor.fbs ([float]), sensor.avsc (array<float>) and Arrow's list<float32>.
@0xb7fc2cddd5dca845;

struct Sensor {
  stamp @0 :Int64;     # ns since the epoch
  label @1 :Text;
  values @2 :List(Float32);
}
