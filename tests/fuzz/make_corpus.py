#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_ops.c into tests/fuzz/corpus/
(or the directory given): small inputs, each aimed at a few operations,
in the input format that fuzz_ops.c's top comment describes."""
import os
import struct
import sys

(MALLOC, CALLOC, REALLOC, REALLOC0, FREE, MEMALIGN, POSIX_MEMALIGN, ALIGNED_ALLOC, USABLE,
 FAILING, BURST, FREE_RANGE, REMOTE_FREE, REMOTE_MALLOC, TRIM_OPTIONS, CHECK) = range(16)


def size(n):
    """A size argument that decodes to n (about n above 4096)."""
    if n <= 600:
        return bytes([0x00]) + struct.pack("<H", n)
    if n <= 4096:
        return bytes([0xd0]) + struct.pack("<H", n)
    return big(n)


def big(n):
    """A size argument of about n bytes, up to 70 KiB (v * 70 / 64)."""
    return bytes([0xf8]) + struct.pack("<H", min(n * 64 // 70, 0xffff))


def edge(k, d):
    """The small class edge 16 * k - 1 + d, d in 0..2."""
    return bytes([0xa2 + d]) + struct.pack("<H", k)  # 0xa2 % 3 == 0


MEDIUM_EDGES = [512] + [(1 << k) + (j << (k - 2)) for k in range(9, 15) for j in range(1, 5)]


def medium_edge(c, d):
    """The medium class edge MEDIUM_EDGES[c] - 1 + d, d in 0..2: c = 0 is the
    small limit (512), c = 1..24 the medium classes 640, 768, ..., 32768."""
    return bytes([0xc0 + d]) + struct.pack("<H", c)  # 0xc0 % 3 == 0


def align(shift):
    return bytes([shift])  # 1 << (shift % 13)


def bad_align(i):
    """0, 3, 24, 48, 4097, 6000, 2^63, SIZE_MAX for i = 0..7."""
    return bytes([0xe8 + i])


def slot16(i):
    return struct.pack("<H", i)


def op(code, *args):
    return bytes([code]) + b"".join(a if isinstance(a, bytes) else bytes([a]) for a in args)


def seeds():
    out = {}
    out["malloc-free"] = b"".join(
        [op(MALLOC, i, size(n)) for i, n in enumerate([0, 1, 15, 16, 17, 100, 512, 513, 600])]
        + [op(USABLE, i) for i in range(9)] + [op(FREE, i) for i in (3, 0, 8, 5)])
    out["class-edges"] = b"".join(op(MALLOC, k * 3 + d, edge(k, d))
                                  for k in range(34) for d in range(3) if k * 3 + d < 256)
    out["calloc"] = b"".join(op(CALLOC, i, c, size(n)) for i, (c, n) in enumerate(
        [(0, 10), (1, 0), (1, 40), (3, 96), (8, 512), (2, 1000), (5, 3000)])) + \
        op(FREE, 1) + op(CALLOC, 1, 1, size(40))
    out["realloc-grow-shrink"] = (op(MALLOC, 7, size(24))
                                  + b"".join(op(REALLOC, 7, 0, size(n))
                                             for n in (40, 48, 200, 512, 513, 2000, 600, 300, 260,
                                                       16, 1))
                                  + op(REALLOC, 7, 0, big(40000)) + op(REALLOC, 7, 0, size(100)))
    out["realloc-null-zero"] = (op(REALLOC, 9, 0, size(50)) + op(REALLOC, 9, 0, size(0))
                                + op(REALLOC0, 10) + op(REALLOC0, 10) + op(MALLOC, 11, size(700))
                                + op(REALLOC0, 11))
    out["reallocarray"] = (op(MALLOC, 1, size(64))
                           + op(REALLOC, 1, 0xc3, size(400)) + op(REALLOC, 1, 0xc7, size(4000))
                           + op(REALLOC, 1, 0xc1, size(33)) + op(REALLOC, 2, 0xc2, size(90)))
    out["memalign"] = b"".join(op(MEMALIGN, i, align(s), size(n))
                               for i, (s, n) in enumerate([(0, 8), (4, 100), (5, 100), (6, 512),
                                                           (12, 20), (8, 3000), (3, 0)]))
    out["posix-memalign"] = b"".join(op(POSIX_MEMALIGN, i, align(s), size(n))
                                     for i, (s, n) in enumerate([(0, 8), (2, 16), (3, 8),
                                                                 (4, 300), (7, 300), (12, 5000)]))
    out["aligned-alloc"] = b"".join(op(ALIGNED_ALLOC, i, align(s), size(n))
                                    for i, (s, n) in enumerate([(1, 1), (4, 64), (6, 7),
                                                                (10, 1024), (12, 4096)]))
    out["bad-alignments"] = b"".join(op(code, i, bad_align(a), size(100))
                                     for i, (code, a) in enumerate(
                                         (c, a) for c in (MEMALIGN, POSIX_MEMALIGN, ALIGNED_ALLOC)
                                         for a in range(8)))
    out["failing-requests"] = (op(MALLOC, 4, size(40)) + op(MALLOC, 5, size(4000))
                               + b"".join(op(FAILING, s, k, b) for k in range(8)
                                          for s, b in ((4, 0), (5, 1), (6, 7))))
    out["burst-fill-pools"] = (op(BURST, slot16(256), 251, size(16))
                               + op(BURST, slot16(600), 200, size(496))
                               + op(FREE_RANGE, slot16(256), 255, 1) + op(CHECK)
                               + op(BURST, slot16(1000), 255, size(512)) + op(CHECK))
    out["free-range-stride"] = (op(BURST, slot16(0), 255, size(48))
                                + op(BURST, slot16(256), 255, size(48))
                                + op(FREE_RANGE, slot16(0), 255, 2) + op(CHECK)
                                + op(FREE_RANGE, slot16(1), 255, 2)
                                + op(BURST, slot16(0), 127, size(200)))
    out["many-arenas"] = b"".join(op(BURST, slot16(256 * j), 255, size(512)) for j in range(12)) \
        + op(CHECK) + op(FREE_RANGE, slot16(0), 255, 3) + op(TRIM_OPTIONS, 0) + op(CHECK)
    # medium blocks (513..32768 bytes): obm's own, in pools of 4 to 64 pages
    out["medium-class-edges"] = b"".join(op(MALLOC, c * 3 + d, medium_edge(c, d))
                                         for c in range(25) for d in range(3)) + op(CHECK) \
        + b"".join(op(USABLE, i) for i in range(75)) + op(FREE_RANGE, slot16(0), 74, 1) + op(CHECK)
    out["medium-realloc"] = (op(MALLOC, 5, size(500))
                             + b"".join(op(REALLOC, 5, 0, medium_edge(c, d))
                                        for c, d in ((0, 2), (1, 1), (1, 2), (4, 2), (12, 2),
                                                     (20, 1), (24, 1), (24, 2), (22, 0), (1, 0)))
                             + op(REALLOC, 5, 0, size(100)) + op(REALLOC, 5, 0, big(40000))
                             + op(REALLOC, 5, 0, medium_edge(16, 1)) + op(REALLOC, 5, 0, size(1)))
    # a medium block grown in small steps: each move lands in a class the next steps stay in
    out["medium-realloc-steps"] = (op(MALLOC, 6, size(640))
                                   + b"".join(op(REALLOC, 6, 0, size(n)) for n in range(656, 4097, 48))
                                   + b"".join(op(REALLOC, 6, 0, big(n)) for n in range(5000, 33000, 1500))
                                   + op(CHECK))
    out["medium-calloc"] = b"".join(op(CALLOC, i, c, medium_edge(m, 1)) for i, (c, m) in enumerate(
        [(1, 1), (3, 4), (8, 9), (2, 16), (5, 24)])) + op(FREE, 2) + op(CALLOC, 2, 1, size(700))
    out["medium-aligned"] = b"".join(op(code, i, align(s), size(n)) for i, (code, s, n) in enumerate(
        [(MEMALIGN, 4, 3000), (MEMALIGN, 6, 3000), (POSIX_MEMALIGN, 3, 1000),
         (POSIX_MEMALIGN, 7, 1000), (ALIGNED_ALLOC, 4, 4096), (ALIGNED_ALLOC, 12, 4096)]))
    out["medium-remote"] = (op(BURST, slot16(0), 40, size(1000))
                            + b"".join(op(REMOTE_FREE, i) for i in range(0, 40, 2)) + op(CHECK)
                            + b"".join(op(REMOTE_MALLOC, i, medium_edge(i % 25, 1))
                                       for i in range(100, 125))
                            + op(CHECK) + op(TRIM_OPTIONS, 3)
                            + b"".join(op(REMOTE_FREE, i) for i in range(100, 125, 3))
                            + op(BURST, slot16(0), 40, size(1000)) + op(CHECK))
    out["medium-whole-arena"] = (op(BURST, slot16(300), 15, medium_edge(24, 1))
                                 + op(BURST, slot16(400), 15, medium_edge(21, 1)) + op(CHECK)
                                 + op(FREE_RANGE, slot16(300), 15, 1) + op(TRIM_OPTIONS, 0)
                                 + op(CHECK) + op(BURST, slot16(300), 15, medium_edge(24, 1))
                                 + op(FREE_RANGE, slot16(400), 15, 2) + op(CHECK))
    out["large-blocks"] = (op(BURST, slot16(100), 10, big(70000)) + op(MALLOC, 3, big(20000))
                           + op(REALLOC, 3, 0, big(60000)) + op(CALLOC, 4, 4, big(50000))
                           + op(FREE_RANGE, slot16(100), 10, 1))
    out["remote"] = (op(BURST, slot16(0), 100, size(64)) + b"".join(op(REMOTE_FREE, i)
                                                                     for i in range(0, 100, 2))
                     + b"".join(op(REMOTE_MALLOC, i, size(64)) for i in range(150, 200))
                     + op(CHECK) + b"".join(op(FREE, i) for i in range(150, 200)) + op(CHECK))
    out["remote-full-pool"] = (op(BURST, slot16(0), 250, size(16)) + op(MALLOC, 251, size(16))
                               + op(REMOTE_FREE, 3) + op(REMOTE_FREE, 100) + op(CHECK)
                               + op(MALLOC, 252, size(16)) + op(CHECK))
    out["helper-restart"] = (b"".join(op(REMOTE_MALLOC, i, size(32 + i)) for i in range(40))
                             + op(TRIM_OPTIONS, 3) + b"".join(op(FREE, i) for i in range(0, 40, 3))
                             + b"".join(op(REMOTE_MALLOC, i, size(80)) for i in range(40, 60))
                             + op(TRIM_OPTIONS, 3) + op(CHECK))
    out["purge-options"] = (op(TRIM_OPTIONS, 0x05) + op(BURST, slot16(0), 255, size(300))
                            + op(FREE_RANGE, slot16(0), 255, 1) + op(CHECK)
                            + op(TRIM_OPTIONS, 0x41) + op(BURST, slot16(0), 255, size(300))
                            + op(FREE_RANGE, slot16(0), 200, 1) + op(TRIM_OPTIONS, 0)
                            + op(TRIM_OPTIONS, 0x3e) + op(CHECK))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(outdir, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds())} seeds in {outdir}")


if __name__ == "__main__":
    main()
