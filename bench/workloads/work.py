"""work.py [N] - the extra real-program workload of bench/run: /usr/bin/python3
building and reshaping dicts, lists, tuples and strings (N records,
default 200000).  Run with PYTHONHASHSEED=0: every run makes the same heap
calls.  Prints a digest of its results."""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
recs = {}
for i in range(n):
    key = "k%07d" % ((i * 7919) % n)
    recs[key] = {"id": i, "name": "item-" + str(i * 31 % 10007), "tags": [i % 7, i % 11, i % 13],
                 "score": (i * 2654435761) % 1000 / 7.0}
groups = {}
for key, r in recs.items():
    groups.setdefault(r["tags"][0], []).append((r["score"], key))
ordered = [sorted(v) for _, v in sorted(groups.items())]
by_name = {}
for r in recs.values():
    by_name.setdefault(r["name"], []).append(r["id"])
words = [" ".join(str(t) for t in r["tags"]) + " " + r["name"] for r in recs.values()]
text = "\n".join(words)
lines = text.split("\n")
counts = {}
for line in lines:
    for w in line.split():
        counts[w] = counts.get(w, 0) + 1
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
del recs, words, text
h = 0
for g in ordered:
    for s, k in g[:50]:
        h = (h * 31 + hash(k) + int(s * 1000)) & 0xFFFFFFFF
print(len(lines), len(by_name), top[:3], h)
