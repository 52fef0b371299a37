"""lookalike's `embedding` for psycopg2.

    import psycopg2, numpy as np
    from lookalike.psycopg2 import register_embedding
    conn = psycopg2.connect(...)
    register_embedding(conn)
    cur = conn.cursor()
    cur.execute("SELECT id FROM products ORDER BY features <=> %s LIMIT 5", (np.array(q),))
    cur.execute("SELECT features FROM products WHERE id = 1"); cur.fetchone()[0]  # numpy array

psycopg2 adapts Python types process-wide: numpy arrays (1-D) and lookalike.Embedding become
`'[...]'::embedding` literals everywhere once register_embedding() ran; the result conversion
(embedding -> numpy float32 array, embedding[] -> list of arrays) is registered on the
connection (or cursor) given, or process-wide with globally=True."""
import numpy as np
import psycopg2.extensions as ext

from . import Embedding, _OID_QUERY, _no_extension, from_text, to_text

__all__ = ["register_embedding"]


class _EmbeddingAdapter:
    def __init__(self, value):
        self._value = value

    def getquoted(self):
        return ("'%s'::embedding" % to_text(self._value)).encode("ascii")

    def __str__(self):
        return self.getquoted().decode("ascii")


def _cast_embedding(value, cur):
    return from_text(value)


def register_embedding(conn_or_curs, globally=False):
    """Registers the conversions; returns the (embedding, embedding[]) type objects.
    LookupError if the database has no lookalike extension."""
    cur = conn_or_curs.cursor() if hasattr(conn_or_curs, "cursor") else conn_or_curs
    cur.execute(_OID_QUERY)
    row = cur.fetchone()
    if row is None:
        raise _no_extension()
    oid, array_oid = row
    embedding = ext.new_type((oid,), "EMBEDDING", _cast_embedding)
    embedding_array = ext.new_array_type((array_oid,), "EMBEDDING[]", embedding)
    scope = None if globally else conn_or_curs
    ext.register_type(embedding, scope)
    ext.register_type(embedding_array, scope)
    ext.register_adapter(np.ndarray, _EmbeddingAdapter)
    ext.register_adapter(Embedding, lambda e: _EmbeddingAdapter(e.values))
    return embedding, embedding_array
