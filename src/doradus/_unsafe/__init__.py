"""The one audited place for code that calls the C library directly (``ctypes``).

Nothing else in Doradus imports ``ctypes``: raw memory and process-control calls that the
standard library does not offer live here, each in a small module of its own, with the
invariants its callers must keep written in its docstring. A review of memory safety starts
and ends with this package.

- `doradus._unsafe.memory`: mapping shared-memory segments without keeping their descriptors.
- `doradus._unsafe.process`: asking the kernel to end a node with its supervisor.

It may import only the standard library.
"""
