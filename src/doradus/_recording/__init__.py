"""Recording and replay: dataflow runs written to MCAP files, read back, exported, replayed.

A recording is an MCAP file (the format rosbag2, Foxglove and Rerun read) with one channel per
recorded output, its topic ``NODE/OUTPUT``; ``docs/recording.md`` holds the mapping. The parts:

- `channels`: the format mapping itself (topics, encodings, schema records per data format);
  `arrow_ipc`: an Arrow value as a self-contained IPC stream and back; `metadata_json`: a
  message's metadata as JSON and back;
- `writer`: `writer.RecordingWriter`, chunked, compressed, flushed so a crash keeps what was
  written; `recorder_node`: the node process `doradus record` adds to the dataflow;
- `reader`: `reader.Recording`, reading a finished file through its summary, or a cut one up
  to its last complete chunk; `info` summarises it, `export` writes JSON lines, CSV, Parquet;
- `plan`: the dataflows `doradus record` and `doradus replay` run (a recorder node added, or
  nodes swapped for replayers) and the configuration their nodes read (`config`);
  `replayer_node`: the node process standing in for a replaced node; `errors`: what fails;
- `attach`: ``doradus record --attach``, a running dataflow recorded through its topic taps
  (`tap_reader` reads them into one bounded inbox), in the ``record`` process itself.

May import: the runtime, the node process, the dataflow model, the wire format, codecs and the
foundation modules; ``mcap`` lazily (the ``record`` extra). The node-process modules
(`recorder_node`, `replayer_node`) never import the runtime supervisor or the control plane.
Never the control plane, the CLI or the TUI.
"""
