"""Allocation-heavy Python of four shapes besides workload.py, for comparing
obm's placement with pymalloc's in the CPython host (bench/obm-python):

    classes   instances with a __dict__, built into lists and dropped
    cycles    cyclic garbage (parent <-> child links) and gc.collect()
    text      string building, splitting and regular expressions
    tuples    containers of tuples: sorted, grouped, dropped

    python3 shapes.py [SCALE [SHAPE ...]]   (SCALE: 1 by default; every shape)

Deterministic; prints a digest line per shape, so runs under different
allocators can be compared byte for byte.
"""
import gc
import re
import sys

SCALE = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0


def n(k):
    return max(1, int(k * SCALE))


class Point:
    def __init__(self, i):
        self.x = i
        self.y = -i
        self.label = "p%d" % i


def classes():
    total = 0
    for rnd in range(n(30)):
        pts = [Point(i + rnd) for i in range(20_000)]
        for p in pts[::3]:
            p.extra = p.x * 2
        total += sum(p.x + len(p.label) for p in pts)
        del pts[::2]
        total += len(pts)
    return total


class Node:
    def __init__(self, parent, i):
        self.parent = parent
        self.children = []
        self.value = i
        if parent is not None:
            parent.children.append(self)


def cycles():
    total = 0
    for rnd in range(n(400)):
        root = Node(None, rnd)
        level = [root]
        for depth in range(4):
            nxt = []
            for node in level:
                for k in range(6):
                    nxt.append(Node(node, depth * 10 + k))
            level = nxt
        total += sum(node.value for node in level)
        del root, level, nxt
        total += gc.collect()
    return total


WORD = re.compile(r"[a-z]+(\d+)")


def text():
    total = 0
    for rnd in range(n(20)):
        lines = ["key%d = value%d, other%d; tail%d" % (i, i * rnd, i % 97, i) for i in range(20_000)]
        for line in lines:
            parts = line.split(",")
            total += len(parts[0].strip().upper())
            for m in WORD.finditer(line):
                total += int(m.group(1)) & 7
        joined = "\n".join(lines)
        total += joined.count("value") + len(joined.replace("tail", "t").split("\n"))
    return total


def tuples():
    total = 0
    for rnd in range(n(25)):
        rows = [(i % 101, i * 7 % 13, "r%d" % i, (i, rnd)) for i in range(40_000)]
        rows.sort()
        groups = {}
        for row in rows:
            groups.setdefault(row[0], []).append(row[1:])
        total += sum(len(v) for v in groups.values()) + len(set(r[1] for r in rows))
        pairs = list(zip(rows[::2], rows[1::2]))
        total += len(pairs)
    return total


SHAPES = {"classes": classes, "cycles": cycles, "text": text, "tuples": tuples}
for shape in sys.argv[2:] or SHAPES:
    print(shape, SHAPES[shape]())
