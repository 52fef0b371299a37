"""lookalike's `embedding` for psycopg 3.

    import psycopg, numpy as np
    from lookalike.psycopg import register_embedding
    conn = psycopg.connect(...)
    register_embedding(conn)
    conn.execute("SELECT id FROM products ORDER BY features <=> %s LIMIT 5", (np.array(q),))
    conn.execute("SELECT features FROM products WHERE id = 1").fetchone()[0]  # numpy array

Registered on the connection (or cursor) given: numpy arrays (1-D) and lookalike.Embedding are
sent as `embedding` (text, or binary with %b / cursor(binary=True)); embedding comes back as a
numpy float32 array and embedding[] as a list of them, in text and binary results alike."""
import numpy as np
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

from . import Embedding, _OID_QUERY, _no_extension, from_binary, from_text, to_binary, to_text

__all__ = ["register_embedding"]


class _TextDumper(Dumper):
    format = Format.TEXT

    def dump(self, obj):
        return to_text(obj).encode("ascii")


class _BinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj):
        return to_binary(obj)


class _TextLoader(Loader):
    format = Format.TEXT

    def load(self, data):
        return from_text(data)


class _BinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data):
        return from_binary(data)


def register_embedding(context):
    """Registers the conversions on a connection or cursor; returns the TypeInfo of embedding.
    LookupError if the database has no lookalike extension."""
    conn = getattr(context, "connection", context)
    row = conn.execute(_OID_QUERY).fetchone()
    if row is None:
        raise _no_extension()
    info = TypeInfo("embedding", row[0], row[1])
    info.register(context)  # makes embedding[] known, so arrays load and dump element-wise
    adapters = context.adapters
    for cls in (np.ndarray, Embedding):
        text = type("EmbeddingTextDumper", (_TextDumper,), {"oid": info.oid})
        binary = type("EmbeddingBinaryDumper", (_BinaryDumper,), {"oid": info.oid})
        adapters.register_dumper(cls, text)
        adapters.register_dumper(cls, binary)
    adapters.register_loader(info.oid, _TextLoader)
    adapters.register_loader(info.oid, _BinaryLoader)
    return info
