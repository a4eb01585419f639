"""Seeds the cleanup benchmark: N live records in the SQLite store, and a
Redis protocol stream (for `redis-cli --pipe`) holding their cache entries
(with TTL) plus N/8 cache keys without TTL and N/8 session keys without TTL.
A second stream holds only the cache keys without TTL: what a run deletes,
to put back before the next round.

Usage: seed_cleanup.py STORE_DB RECORDS RESP_OUT RESTORE_OUT
"""
import sqlite3
import sys
import time


def resp(*parts):
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def main():
    db_path, records, out_path, restore_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    now_ms = int(time.time() * 1000)
    version = now_ms * 1000
    db = sqlite3.connect(db_path)
    with db:
        db.executemany(
            "INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) "
            "VALUES (?, 'value', ?, ?, NULL)",
            ((f"bench:{i}", version, now_ms) for i in range(records)),
        )
        # The store's trigger noted every row in the cache outbox; the cache
        # entries written below carry the same versions, so there is nothing
        # to repair, and the job would count them as leftovers.
        db.execute("DELETE FROM cache_outbox WHERE substr(key, 1, 6) = 'bench:'")
    db.close()
    extra = records // 8
    with open(out_path, "wb") as out:
        for i in range(records):
            out.write(resp("SET", f"cache:bench:{i}", f"{version} L {now_ms} - value", "PX", "3600000"))
        for i in range(extra):
            out.write(resp("SET", f"session:{i}", "x"))
    with open(restore_path, "wb") as out:
        for i in range(extra):
            out.write(resp("SET", f"cache:nottl:{i}", "x"))


if __name__ == "__main__":
    main()
