"""The FlatBuffers verifier: a bounds-checking walk over a buffer, driven by its binary schema.

The FlatBuffers Python runtime trusts the buffer (see `doradus.codecs._flatbuffers`), so
`Verifier` checks, like the C++ ``Verifier``, that every table, vtable, string, vector and
nested table or union the schema declares lies inside the buffer, with a depth limit
(`MAX_DEPTH`) and an object limit (`MAX_OBJECTS`). A problem raises `Invalid`.

Example::

    Verifier(loaded.schema, memoryview(data)).root(root_index)   # raises Invalid
"""

from __future__ import annotations

import struct

from doradus.codecs._flatbuffers_schema import (
    MAX_DEPTH,
    NONE,
    OBJ,
    SCALAR_SIZE,
    STRING,
    UNION,
    VECTOR,
    FieldInfo,
    ObjectInfo,
    Schema,
    TypeInfo,
)

MAX_OBJECTS = 1_000_000
"""Most objects one walk visits: garbage cannot make it run for long."""
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")


class Invalid(Exception):
    """The buffer is not a valid FlatBuffer of the schema (the message says where)."""


class Verifier:
    """A bounds-checking walk over one buffer (see the module docstring)."""

    def __init__(self, schema: Schema, buf: memoryview) -> None:
        self.schema = schema
        self.buf = buf
        self.size = len(buf)
        self.objects = 0

    def need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > self.size:
            raise Invalid(f"{what} at {pos} (+{size} B) lies outside the {self.size}-byte buffer")

    def u32(self, pos: int, what: str) -> int:
        self.need(pos, 4, what)
        value: int = _U32.unpack_from(self.buf, pos)[0]
        return value

    def follow(self, pos: int, what: str) -> int:
        return pos + self.u32(pos, what)

    def root(self, index: int) -> None:
        if self.size % 4:
            size = self.size
            raise Invalid(f"a FlatBuffer is a multiple of 4 bytes long; this one has {size} (truncated?)")
        self.table(self.follow(0, "the root offset"), index, 0)

    def count(self, depth: int) -> None:
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            raise Invalid(f"more than {MAX_OBJECTS} objects")
        if depth > MAX_DEPTH:
            raise Invalid(f"tables nested deeper than {MAX_DEPTH}")

    def table(self, pos: int, index: int, depth: int) -> None:
        self.count(depth)
        obj = self.schema.objects[index]
        self.need(pos, 4, f"table {obj.name}")
        vtable = pos - _I32.unpack_from(self.buf, pos)[0]
        self.need(vtable, 4, f"the vtable of {obj.name}")
        vsize, tsize = _U16.unpack_from(self.buf, vtable)[0], _U16.unpack_from(self.buf, vtable + 2)[0]
        if vsize < 4 or vsize % 2 or tsize < 4:
            raise Invalid(f"the vtable of {obj.name} is malformed (sizes {vsize}, {tsize})")
        self.need(vtable, vsize, f"the vtable of {obj.name}")
        self.need(pos, tsize, f"table {obj.name}")
        for f in obj.fields:
            at = _U16.unpack_from(self.buf, vtable + f.slot)[0] if f.slot + 2 <= vsize else 0
            if not at:
                if f.required:
                    raise Invalid(f"required field {obj.name}.{f.name} is missing")
                continue
            size = self.inline_size(f.type)
            if at + size > tsize:
                raise Invalid(f"field {obj.name}.{f.name} lies outside its table")
            self.value(pos + at, f, obj, vtable, vsize, depth)

    def inline_size(self, t: TypeInfo) -> int:
        if t.base in SCALAR_SIZE:
            return SCALAR_SIZE[t.base]
        if t.base == OBJ and self.schema.objects[t.index].is_struct:
            return self.schema.objects[t.index].bytesize
        return 4

    def union_type(self, f: FieldInfo, obj: ObjectInfo, vtable: int, vsize: int, pos: int) -> int:
        """The value of the ``<name>_type`` field that goes with union field ``f``."""
        type_slot = f.slot - 2
        at = _U16.unpack_from(self.buf, vtable + type_slot)[0] if type_slot + 2 <= vsize else 0
        if not at:
            return 0
        table_start = pos - _U16.unpack_from(self.buf, vtable + f.slot)[0]
        value: int = _U8.unpack_from(self.buf, table_start + at)[0]
        return value

    def value(self, at: int, f: FieldInfo, obj: ObjectInfo, vtable: int, vsize: int, depth: int) -> None:
        t = f.type
        what = f"{obj.name}.{f.name}"
        if t.base in SCALAR_SIZE:
            return
        if t.base == STRING:
            self.string(self.follow(at, what), what)
        elif t.base == VECTOR:
            self.vector(self.follow(at, what), t, f, obj, vtable, vsize, at, depth)
        elif t.base == OBJ:
            if not self.schema.objects[t.index].is_struct:
                self.table(self.follow(at, what), t.index, depth + 1)
        elif t.base == UNION:
            member = self.union_type(f, obj, vtable, vsize, at)
            self.union(self.follow(at, what), t.index, member, depth, what)

    def union(self, pos: int, enum_index: int, member: int, depth: int, what: str) -> None:
        index = self.schema.enums[enum_index].members.get(member, -1) if enum_index >= 0 else -1
        if member == 0 or index < 0:
            self.need(pos, 4, what)  # unknown member (a newer schema): only check the offset
            return
        if self.schema.objects[index].is_struct:
            self.need(pos, self.schema.objects[index].bytesize, what)
        else:
            self.table(pos, index, depth + 1)

    def string(self, pos: int, what: str) -> None:
        length = self.u32(pos, f"string {what}")
        self.need(pos, 4 + length + 1, f"string {what}")
        if self.buf[pos + 4 + length] != 0:
            raise Invalid(f"string {what} is not zero-terminated")

    def vector(
        self,
        pos: int,
        t: TypeInfo,
        f: FieldInfo,
        obj: ObjectInfo,
        vtable: int,
        vsize: int,
        at: int,
        depth: int,
    ) -> None:
        what = f"vector {obj.name}.{f.name}"
        count = self.u32(pos, what)
        element = TypeInfo(t.element, NONE, t.index)
        width = self.inline_size(element)
        if count > self.size:
            raise Invalid(f"{what} claims {count} elements")
        self.need(pos + 4, count * width, what)
        first = pos + 4
        if t.element == STRING:
            for i in range(count):
                self.string(self.follow(first + 4 * i, what), what)
        elif t.element == OBJ and not self.schema.objects[t.index].is_struct:
            for i in range(count):
                self.table(self.follow(first + 4 * i, what), t.index, depth + 1)
        elif t.element == UNION:
            type_slot = f.slot - 2
            types_at = _U16.unpack_from(self.buf, vtable + type_slot)[0] if type_slot + 2 <= vsize else 0
            if not types_at:
                raise Invalid(f"{what} has no type vector")
            types = self.follow(at - _U16.unpack_from(self.buf, vtable + f.slot)[0] + types_at, what)
            if self.u32(types, what) != count:
                raise Invalid(f"{what} and its type vector differ in length")
            self.need(types + 4, count, what)
            for i in range(count):
                member = self.buf[types + 4 + i]
                self.union(self.follow(first + 4 * i, what), t.index, member, depth, what)
