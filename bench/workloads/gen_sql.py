#!/usr/bin/env python3
"""gen_sql.py ROWS OUT - writes workload D's SQL script for sqlite3:
a table with an index, ROWS inserts in one transaction, then a count and a
GROUP BY.  Deterministic (fixed seed): every run makes the same heap calls."""
import random
import sys


def main():
    rows, out = int(sys.argv[1]), sys.argv[2]
    r = random.Random(3)
    letters = "abcdefghijklmnopqrstuvwxyz"
    with open(out, "w") as f:
        f.write("PRAGMA journal_mode=OFF;\n")  # measures sqlite's heap use, not the journal's fsyncs
        f.write("PRAGMA synchronous=OFF;\n")
        f.write("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL, note TEXT);\n")
        f.write("CREATE INDEX t_name ON t(name);\n")
        f.write("BEGIN;\n")
        for i in range(rows):
            name = "".join(r.choice(letters) for _ in range(r.randint(6, 24)))
            note = "x" * r.randint(0, 120)
            f.write("INSERT INTO t(name, grp, val, note) VALUES('%s', %d, %.3f, '%s');\n"
                    % (name, r.randint(0, 99), r.random() * 1000, note))
        f.write("COMMIT;\n")
        f.write("SELECT count(*), sum(length(note)) FROM t;\n")
        f.write("SELECT grp, count(*), round(sum(val), 3), min(name), max(name) FROM t GROUP BY grp ORDER BY grp;\n")


if __name__ == "__main__":
    main()
