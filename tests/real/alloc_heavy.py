"""An allocation-heavy, deterministic Python workload for obm's real-program
test (tests/real/test_python.sh). With PYTHONMALLOC=malloc every object,
small or large, comes from malloc, so the run goes through obm when the
drop-in is preloaded. The output on stdout depends only on the work done,
so runs with and without obm must print the same bytes.

With --obm-probe, it also checks, after the work, that obm really served
the objects: obm_owns() is found in the process and claims freshly made
small objects. The verdict goes to stderr; the exit status is 3 when obm
is not active.
"""

import hashlib
import json
import random
import sys


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def small_objects(rng):
    """Many short-lived dicts, tuples, lists and strings; a window keeps
    some alive for a while, so frees come in a mixed order."""
    window = []
    total = 0
    for i in range(300000):
        d = {"id": i, "name": "item-%d" % i, "pair": (i, -i), "tags": [i % 7, i % 11]}
        if rng.random() < 0.3:
            d["extra"] = str(i) * (i % 5)
        window.append(d)
        if len(window) > 2000:
            victim = window.pop(rng.randrange(len(window)))
            total += victim["pair"][0] + len(victim["name"]) + sum(victim["tags"])
    total += sum(w["id"] for w in window)
    print("small objects:", total)


def json_round_trip(rng):
    records = []
    for i in range(40000):
        records.append(
            {
                "id": i,
                "title": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 8))),
                "score": round(rng.uniform(-1000, 1000), 3),
                "flags": [rng.random() < 0.5 for _ in range(rng.randrange(0, 5))],
                "nested": {"a": [i, i * 2, {"b": str(i)}], "c": None},
            }
        )
    text = json.dumps({"records": records, "count": len(records)}, sort_keys=True)
    back = json.loads(text)
    assert back["records"] == records
    again = json.dumps(back, sort_keys=True)
    assert again == text
    print("json:", len(text), digest(text))


class Node:
    __slots__ = ("key", "left", "right", "payload")

    def __init__(self, key):
        self.key = key
        self.left = None
        self.right = None
        self.payload = [key] * (key % 4)


def tree_build_and_tear_down(rng):
    """An unbalanced binary search tree of 100,000 nodes, walked, then
    dropped in one go (CPython frees it node by node)."""
    root = None
    keys = [rng.randrange(10**9) for _ in range(100000)]
    for k in keys:
        if root is None:
            root = Node(k)
            continue
        node = root
        while True:
            if k < node.key:
                if node.left is None:
                    node.left = Node(k)
                    break
                node = node.left
            else:
                if node.right is None:
                    node.right = Node(k)
                    break
                node = node.right
    out, stack, node = [], [], root
    height, depth = 0, {id(root): 1}
    while stack or node is not None:
        while node is not None:
            stack.append(node)
            d = depth[id(node)]
            height = max(height, d)
            for child in (node.left, node.right):
                if child is not None:
                    depth[id(child)] = d + 1
            node = node.left
        node = stack.pop()
        out.append(node.key)
        node = node.right
    assert out == sorted(keys)
    del depth, node, stack
    root = None
    print("tree:", len(out), "height", height, digest(",".join(map(str, out[::97]))))


def sorting(rng):
    rows = [(rng.choice(WORDS), rng.randrange(1000), "%08x" % rng.getrandbits(32)) for _ in range(200000)]
    by_word = sorted(rows)
    by_number = sorted(rows, key=lambda r: (r[1], r[2]))
    names = sorted({r[2] + r[0] for r in rows}, key=len)
    print(
        "sorting:",
        digest(repr(by_word[::501])),
        digest(repr(by_number[::499])),
        len(names),
        digest("".join(names[::313])),
    )


def strings_and_sets(rng):
    text = " ".join(rng.choice(WORDS) for _ in range(300000))
    parts = text.split()
    counts = {}
    for p in parts:
        counts[p] = counts.get(p, 0) + 1
    joined = "|".join("%s=%d" % kv for kv in sorted(counts.items()))
    upper = text.upper().replace("A", "aa")
    grams = set(text[i : i + 3] for i in range(0, len(text) - 3, 3))
    b = bytearray()
    for i in range(50000):
        b += bytes([i % 256]) * (i % 13)
    print("strings:", len(parts), digest(joined), len(upper), len(grams), len(b), digest(b.hex()[:100000]))


WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega arena pool block heap free list size class lock fork"
).split()


def obm_probe():
    import ctypes

    libc = ctypes.CDLL(None)
    try:
        owns = libc.obm_owns
    except AttributeError:
        print("obm-probe: obm_owns not found: obm is not active", file=sys.stderr)
        return False
    owns.argtypes = [ctypes.c_void_p]
    owns.restype = ctypes.c_int
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    p = libc.malloc(32)
    by_malloc = owns(p)
    libc.free(p)
    # Fresh small objects: with PYTHONMALLOC=malloc they sit in obm's pools.
    objs = [(i, str(i)) for i in range(1000)] + [{"k": i} for i in range(1000)]
    owned = sum(1 for o in objs if owns(id(o)))
    print("obm-probe: malloc(32) owned %d, %d/%d objects in obm arenas" % (by_malloc != 0, owned, len(objs)), file=sys.stderr)
    return by_malloc != 0 and owned == len(objs)


def main():
    rng = random.Random(20240611)
    small_objects(rng)
    json_round_trip(rng)
    tree_build_and_tear_down(rng)
    sorting(rng)
    strings_and_sets(rng)
    if "--obm-probe" in sys.argv[1:] and not obm_probe():
        sys.exit(3)


if __name__ == "__main__":
    main()
