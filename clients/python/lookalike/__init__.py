"""Python helpers for lookalike's `embedding` type (PostgreSQL extension lookalike).

    import lookalike.psycopg2    # or: import lookalike.psycopg  (psycopg 3)
    lookalike.psycopg2.register_embedding(conn)

After that, numpy arrays (1-D) and `lookalike.Embedding` values are sent as `embedding`,
`embedding` columns come back as numpy float32 arrays and `embedding[]` as lists of them.
This module holds the conversions shared by both drivers."""
import struct

import numpy as np

__version__ = "0.2.0"
__all__ = ["Embedding", "to_text", "from_text", "to_binary", "from_binary", "MAX_DIMS"]

MAX_DIMS = 16000  # the extension's limit (and pgvector's)


class Embedding:
    """Wraps a sequence of numbers (list, tuple, numpy array) so that the driver sends it as
    an `embedding`: `cur.execute("... ORDER BY e <=> %s LIMIT 5", (Embedding([0.1, 0.2]),))`.
    A plain list is sent as a PostgreSQL array (drivers do that for every list), which works
    where an assignment cast applies (INSERT, UPDATE) or with an explicit `%s::embedding`."""

    __slots__ = ("values",)

    def __init__(self, values):
        self.values = as_vector(values)

    def to_numpy(self):
        return self.values

    def __repr__(self):
        return "Embedding(%s)" % to_text(self.values)

    def __eq__(self, other):
        return isinstance(other, Embedding) and np.array_equal(self.values, other.values)


def as_vector(values):
    """A 1-D float32 numpy array of the values; TypeError/ValueError for anything else."""
    if isinstance(values, Embedding):
        return values.values
    a = np.asarray(values, dtype=np.float32)
    if a.ndim != 1:
        raise ValueError("an embedding is a 1-D array, got shape %s" % (a.shape,))
    if not 1 <= a.shape[0] <= MAX_DIMS:
        raise ValueError("an embedding has 1 to %d dimensions, got %d" % (MAX_DIMS, a.shape[0]))
    return a


def to_text(values):
    """The text form '[1,0.5,...]'. repr() of each float32 (widened to a double) is its shortest
    decimal that reads back as the same float32, so values travel exactly."""
    return "[" + ",".join(map(repr, as_vector(values).tolist())) + "]"


def from_text(s):
    """numpy float32 array from the text form; None stays None."""
    if s is None:
        return None
    if isinstance(s, (bytes, bytearray, memoryview)):
        s = bytes(s).decode("ascii")
    s = s.strip()
    if len(s) < 2 or s[0] != "[" or s[-1] != "]":
        raise ValueError("not an embedding: %r" % s[:40])
    return np.array(s[1:-1].split(","), dtype=np.float32)


_HEADER = struct.Struct("!hh")


def to_binary(values):
    """The binary form (PostgreSQL's send/recv): int16 dims, int16 0, big-endian float4s."""
    a = as_vector(values)
    return _HEADER.pack(a.shape[0], 0) + a.astype(">f4").tobytes()


def from_binary(data):
    """numpy float32 array from the binary form."""
    if data is None:
        return None
    data = bytes(data)
    dim, unused = _HEADER.unpack_from(data)
    if unused != 0 or len(data) != 4 + 4 * dim:
        raise ValueError("not a binary embedding (%d bytes, %d dimensions)" % (len(data), dim))
    return np.frombuffer(data, dtype=">f4", offset=4).astype(np.float32)


_OID_QUERY = """
SELECT t.oid, t.typarray
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
     AND d.objid = t.oid AND d.deptype = 'e'
JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid AND x.extname = 'lookalike'
WHERE t.typname = 'embedding'
"""


def _no_extension():
    return LookupError("the extension lookalike is not installed in this database "
                       "(CREATE EXTENSION lookalike)")
