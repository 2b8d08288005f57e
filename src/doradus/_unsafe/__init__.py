"""The one audited place for code that reaches raw memory or the C library directly.

Nothing else in Doradus imports ``ctypes`` or ``mmap``, or turns an address into a buffer:
the calls that the standard library does not offer safely live here, each in a small module
of its own, with the invariants its callers must keep written in its docstring and a
``# SAFETY:`` comment on every unsafe operation saying why it is safe. A review of memory
safety starts and ends with this package; ``tests/architecture/test_unsafe.py`` and an
import-linter contract keep it that way (which modules may import it is listed there).

- `doradus._unsafe.memory`: mapping shared-memory segments without keeping their descriptors.
- `doradus._unsafe.arrow_buffers`: Arrow buffers over those mappings, range-checked.
- `doradus._unsafe.keeper`: the supervisor's side of a run's node keeper, which ends the
  nodes with their supervisor.
- `doradus._unsafe.keeper_process`: the keeper process itself (run as a script) and the one
  ``prctl(2)`` call it needs.
- `doradus._unsafe.iceoryx2_samples`: iceoryx2 samples as bytes, written before they are
  sent and read while they are held (the `iceoryx2` backend).

May import only the standard library (``arrow_buffers`` also pyarrow, ``iceoryx2_samples``
numpy); ``keeper_process``
runs as a bare script and imports nothing of Doradus.
"""
