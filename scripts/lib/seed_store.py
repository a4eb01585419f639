"""Writes records straight into an API's SQLite store (already migrated),
bypassing the caches: for benchmarks that need keys only the store has.

Usage: seed_store.py STORE_DB PREFIX COUNT
"""
import sqlite3
import sys
import time


def main():
    db_path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    now_ms = int(time.time() * 1000)
    db = sqlite3.connect(db_path)
    with db:
        db.executemany(
            "INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) "
            "VALUES (?, 'a value of a few words', ?, ?, NULL)",
            ((f"{prefix}{i}", now_ms * 1000, now_ms) for i in range(count)),
        )
        # The store's trigger noted every row in the cache outbox; these
        # records never were in Redis, so there is nothing to repair, and
        # the API would otherwise start by replaying them all.
        db.execute(
            "DELETE FROM cache_outbox WHERE substr(key, 1, length(?1)) = ?1", (prefix,)
        )
    db.close()


if __name__ == "__main__":
    main()
