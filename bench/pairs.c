/* obm-pairs: malloc/free pairs for counting instructions under callgrind.
 *
 *   obm-pairs N SIZE [live|alone]
 *
 * "live" (the default) first allocates 10,000 blocks of mixed small sizes
 * (8..512 bytes, the same fixed-seed sequence as bench/speed.cc's live set);
 * "alone" allocates none. Then N malloc(SIZE)/free pairs, everything freed,
 * exit 0. The allocator is whatever the process's malloc is (LD_PRELOAD);
 * built with -fno-builtin and through a volatile pointer so every call
 * happens. bench/callgrind-pairs.sh runs it at two N and divides the
 * difference, which cancels start-up and the live set.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE_BLOCKS 10000

/* xorshift64*, as in bench/speed.cc */
static uint64_t rng_state = 1;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t rng_range(size_t lo, size_t hi)
{
    return lo + (size_t)((rng_next() >> 11) % (hi - lo + 1));
}

static int usage(void)
{
    fputs("usage: obm-pairs N SIZE [live|alone]\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4)
        return usage();
    char *end;
    unsigned long long n = strtoull(argv[1], &end, 10);
    if (*end || end == argv[1])
        return usage();
    unsigned long size = strtoul(argv[2], &end, 10);
    if (*end || end == argv[2])
        return usage();
    int live = 1;
    if (argc == 4) {
        if (strcmp(argv[3], "alone") == 0)
            live = 0;
        else if (strcmp(argv[3], "live") != 0)
            return usage();
    }

    static void *blocks[LIVE_BLOCKS];
    size_t nblocks = live ? LIVE_BLOCKS : 0;
    for (size_t i = 0; i < nblocks; i++) {
        blocks[i] = malloc(rng_range(8, 512));
        if (!blocks[i]) {
            perror("obm-pairs: malloc");
            return 1;
        }
    }

    void *volatile p;
    for (unsigned long long i = 0; i < n; i++) {
        p = malloc(size);
        free(p);
    }

    for (size_t i = 0; i < nblocks; i++)
        free(blocks[i]);
    return 0;
}
