#!/usr/bin/python3
"""Tests of the Python client (clients/python) against a real server with lookalike installed:
psycopg2 and psycopg 3, numpy arrays / Embedding / lists in, numpy arrays out, embedding[] both
ways, text and binary (psycopg 3), NULLs, exact float round trips, errors.
usage: test_client.py DSN [psycopg2|psycopg ...]   prints one "ok - NAME" / "not ok - NAME"
line per check (test/tap/097_python_client.pl turns them into TAP)."""
import os
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lookalike  # noqa: E402

failures = 0


def check(name, cond, detail=""):
    global failures
    if cond:
        print("ok - %s" % name)
    else:
        failures += 1
        print("not ok - %s%s" % (name, (" # " + str(detail).replace("\n", " ")) if detail else ""))


def raises(fn, exc_type, pgcode=None):
    try:
        fn()
    except exc_type as e:
        return pgcode is None or getattr(e, "pgcode", None) == pgcode or \
            getattr(getattr(e, "diag", None), "sqlstate", None) == pgcode
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return False
    return False


rng = np.random.default_rng(7)
# Float32 values across the whole range (tiny, huge, negative, subnormal), to check exactness.
EXACT = np.concatenate([rng.standard_normal(60).astype(np.float32),
                        np.array([1e-38, 1.5e-45, 3.4028235e38, -0.1, 0.0, 1.0 / 3], dtype=np.float32)])
ROWS = [rng.standard_normal(16).astype(np.float32) for _ in range(50)]


def setup(cur):
    cur.execute("DROP TABLE IF EXISTS py_items")
    cur.execute("CREATE TABLE py_items (id int PRIMARY KEY, e embedding(16))")


def common(tag, conn, cur, fetch_query, register, exc_base):
    """Checks shared by both drivers. fetch_query(sql, params) -> rows."""
    setup(cur)
    for i, v in enumerate(ROWS):
        cur.execute("INSERT INTO py_items VALUES (%s, %s)", (i, v))
    check(tag + ": numpy arrays insert", fetch_query("SELECT count(*) FROM py_items", None)[0][0] == 50)
    got = fetch_query("SELECT e FROM py_items WHERE id = 3", None)[0][0]
    check(tag + ": embedding comes back as a numpy float32 array",
          isinstance(got, np.ndarray) and got.dtype == np.float32 and np.array_equal(got, ROWS[3]),
          repr(got))
    exact = fetch_query("SELECT %s::embedding", (EXACT,))[0][0]
    check(tag + ": every float32 survives the round trip bit for bit",
          exact.tobytes() == EXACT.tobytes(), exact[:8])
    q = ROWS[7] + 0.01
    server = [r[0] for r in fetch_query(
        "SELECT id FROM py_items ORDER BY e <=> '%s' LIMIT 5" % lookalike.to_text(q), None)]
    client = [r[0] for r in fetch_query("SELECT id FROM py_items ORDER BY e <=> %s LIMIT 5", (q,))]
    check(tag + ": ORDER BY e <=> %s with a numpy array", client == server and client[0] == 7,
          (client, server))
    emb = [r[0] for r in fetch_query("SELECT id FROM py_items ORDER BY e <-> %s LIMIT 3",
                                     (lookalike.Embedding(q.tolist()),))]
    check(tag + ": ORDER BY e <-> %s with lookalike.Embedding(list)", emb[0] == 7, emb)
    lst = [r[0] for r in fetch_query("SELECT id FROM py_items ORDER BY e <=> %s::embedding LIMIT 1",
                                     (q.tolist(),))]
    check(tag + ": a plain list with %s::embedding", lst == [7], lst)
    cur.execute("INSERT INTO py_items VALUES (100, %s)", ([float(x) for x in ROWS[0]],))
    check(tag + ": a plain list inserts into an embedding column (assignment cast)",
          np.array_equal(fetch_query("SELECT e FROM py_items WHERE id = 100", None)[0][0], ROWS[0]))
    arr = fetch_query("SELECT array_agg(e ORDER BY id) FROM py_items WHERE id < 3", None)[0][0]
    check(tag + ": embedding[] comes back as a list of numpy arrays",
          isinstance(arr, list) and len(arr) == 3 and all(np.array_equal(a, ROWS[i]) for i, a in enumerate(arr)),
          repr(arr)[:200])
    withnull = fetch_query("SELECT ARRAY[e, NULL] FROM py_items WHERE id = 1", None)[0][0]
    check(tag + ": NULL inside embedding[] is None", withnull[1] is None and np.array_equal(withnull[0], ROWS[1]))
    back = fetch_query("SELECT %s::embedding[]", ([ROWS[0], ROWS[1]],))[0][0]
    check(tag + ": a list of numpy arrays is sent as embedding[]",
          len(back) == 2 and np.array_equal(back[1], ROWS[1]), repr(back)[:200])
    knn = fetch_query("SELECT query_id, id FROM exact_knn(%s, %s, %s, %s, 2) ORDER BY 1, 2",
                      ([1, 2], [ROWS[1], ROWS[2]], list(range(50)), ROWS))
    ref = fetch_query("""SELECT query_id, id FROM exact_knn(ARRAY[1, 2]::bigint[],
        (SELECT array_agg(e ORDER BY id) FROM py_items WHERE id IN (1, 2)),
        (SELECT array_agg(id::bigint ORDER BY id) FROM py_items WHERE id < 50),
        (SELECT array_agg(e ORDER BY id) FROM py_items WHERE id < 50), 2) ORDER BY 1, 2""", None)
    check(tag + ": exact_knn() with embedding[] parameters", knn == ref and len(knn) == 4, (knn, ref))
    check(tag + ": NULL embedding is None", fetch_query("SELECT NULL::embedding", None)[0][0] is None)
    check(tag + ": a 2-D array is refused in the client",
          raises(lambda: fetch_query("SELECT %s", (np.zeros((2, 2)),)), (ValueError, exc_base)))
    check(tag + ": wrong dimensions: the server's 22000",
          raises(lambda: cur.execute("INSERT INTO py_items VALUES (999, %s)", (np.ones(3),)), exc_base, "22000"))


def run_psycopg2(dsn):
    import psycopg2
    from lookalike.psycopg2 import register_embedding
    bare = psycopg2.connect(dsn.replace("dbname=", "dbname=plain_") if "dbname=" in dsn else dsn + " dbname=postgres")
    check("psycopg2: register_embedding() in a database without lookalike raises LookupError",
          raises(lambda: register_embedding(bare), LookupError))
    bare.close()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    register_embedding(conn)
    cur = conn.cursor()

    def fetch(sql, params):
        cur.execute(sql, params)
        return cur.fetchall()
    common("psycopg2", conn, cur, fetch, register_embedding, psycopg2.Error)
    conn.close()


def run_psycopg(dsn):
    import psycopg
    from lookalike.psycopg import register_embedding
    with psycopg.connect(dsn.replace("dbname=", "dbname=plain_")) as bare:
        check("psycopg: register_embedding() in a database without lookalike raises LookupError",
              raises(lambda: register_embedding(bare), LookupError))
    conn = psycopg.connect(dsn, autocommit=True)
    register_embedding(conn)
    cur = conn.cursor()

    def fetch(sql, params):
        cur.execute(sql, params)
        return cur.fetchall()
    common("psycopg", conn, cur, fetch, register_embedding, psycopg.Error)
    setup(cur)
    for i, v in enumerate(ROWS):
        cur.execute("INSERT INTO py_items VALUES (%s, %b)", (i, v))
    bcur = conn.cursor(binary=True)
    bcur.execute("SELECT e FROM py_items ORDER BY id")
    rows = [r[0] for r in bcur.fetchall()]
    check("psycopg: binary parameters (%b) and binary results",
          all(isinstance(a, np.ndarray) and a.dtype == np.float32 and np.array_equal(a, ROWS[i])
              for i, a in enumerate(rows)) and len(rows) == 50)
    bcur.execute("SELECT %b::embedding", (EXACT,))
    check("psycopg: binary round trip is bit for bit", bcur.fetchone()[0].tobytes() == EXACT.tobytes())
    bcur.execute("SELECT array_agg(e ORDER BY id) FROM py_items WHERE id < 2")
    arr = bcur.fetchone()[0]
    check("psycopg: binary embedding[] is a list of numpy arrays",
          len(arr) == 2 and np.array_equal(arr[1], ROWS[1]))
    conn.close()


def main():
    dsn = sys.argv[1]
    drivers = sys.argv[2:] or ["psycopg2", "psycopg"]
    for d in drivers:
        try:
            {"psycopg2": run_psycopg2, "psycopg": run_psycopg}[d](dsn)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            check("%s: ran to the end" % d, False, e)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
