"""The sync shell over psycopg 3 + psycopg_pool: generated from ``router/_async`` by
``tools/unasync.py``, except for the driver, runtime, pool and query-signature modules."""
