"""Allocation-heavy Python for obm's runtime benchmark: many small dicts,
tuples, lists and strings built and dropped, a JSON round trip of a large
structure, and a tree built and torn down. Deterministic; prints a digest
of each phase, so runs under different allocators can be compared byte for
byte.

    python3 workload.py [SCALE]     (SCALE: 1 by default, 0.05 for tests)
"""
import json
import sys

SCALE = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0


def n(k):
    return max(1, int(k * SCALE))


def small_objects():
    """Records as dicts, tuples, lists and strings, most dropped at once."""
    total = 0
    keep = []
    for i in range(n(300_000)):
        rec = {"id": i, "name": "item-%d" % i, "tags": [i % 7, i % 11, i % 13],
               "pos": (i * 0.5, -i)}
        total += len(rec["name"]) + sum(rec["tags"])
        if i % 50 == 0:
            keep.append(rec)
        if len(keep) > 2000:
            keep = keep[1000:]
    words = " ".join("w%d" % (i % 997) for i in range(n(200_000)))
    parts = words.split()
    total += len(set(parts)) + len(parts)
    return total


def json_round_trip():
    """A large nested structure to JSON text and back."""
    data = {"users": [{"id": i, "name": "user%d" % i, "scores": list(range(i % 20)),
                       "meta": {"active": i % 3 == 0, "ratio": i / 7.0}}
                      for i in range(n(60_000))]}
    text = json.dumps(data, sort_keys=True)
    back = json.loads(text)
    return len(text), sum(len(u["scores"]) for u in back["users"])


class Node:
    __slots__ = ("left", "right", "value")

    def __init__(self, left, right, value):
        self.left, self.right, self.value = left, right, value


def make_tree(depth, value):
    if depth == 0:
        return Node(None, None, value)
    return Node(make_tree(depth - 1, 2 * value), make_tree(depth - 1, 2 * value + 1), value)


def check_tree(node):
    if node.left is None:
        return node.value & 1
    return 1 + check_tree(node.left) + check_tree(node.right)


def trees():
    """Binary trees built and torn down, with one long-lived tree."""
    long_lived = make_tree(15 if SCALE >= 1 else 10, 1)
    total = 0
    for depth in range(4, 16 if SCALE >= 1 else 11, 2):
        for i in range(n(2 ** (18 - depth) // 4)):
            total += check_tree(make_tree(depth, i))
    return total + check_tree(long_lived)


print("small objects:", small_objects())
print("json:", *json_round_trip())
print("trees:", trees())
