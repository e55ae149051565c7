/* obm-speed: allocator speed, one binary for every allocator.
 *
 * The same binary runs once per allocator: glibc (no preload) or
 * LD_PRELOAD=<jemalloc, mimalloc, tcmalloc, TBB's malloc proxy or obm's
 * libobmalloc.so>. Every measured operation is a plain malloc, free, realloc
 * or calloc (never obm_* and never C++ new), and this file is built with
 * -fno-builtin, so the compiler can neither elide nor merge a malloc/free
 * pair and the preloaded allocator is the one measured. Every returned pointer goes through
 * benchmark::DoNotOptimize. Random sizes and orders come from a fixed-seed
 * xorshift and are generated outside the timed loop.
 *
 * Each benchmark reports items = operations performed, the operation being
 * stated in its label, so ns/op = 1e9 / items_per_second. For the threaded
 * ones, items are counted per thread and google-benchmark sums
 * items_per_second over the threads (with real time): aggregate throughput.
 *
 * Order matters: glibc sets __libc_single_threaded to false for good once a
 * second thread is created, and both glibc's malloc and obm skip their locks
 * only while it is true. The single-threaded benchmarks are therefore
 * registered first and the threaded ones last (BM_churn_private/threads:1
 * runs on the main thread, before any thread exists); a --benchmark_filter
 * keeps that order.
 *
 * The context of the JSON output names the allocator actually in use
 * ("allocator": obm, jemalloc ..., found with dlsym), so a runner can check
 * that the preload took (bench/run.py does). Under obm each benchmark also
 * reports obm's slow paths per 1,000 operations as counters (SlowPaths).
 */
#include <benchmark/benchmark.h>

#include "obm.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace
{

/* xorshift64*: small, fast, deterministic. */
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed ? seed : 0x9e3779b97f4a7c15ull)
    {
    }
    uint64_t next()
    {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545f4914f6cdd1dull;
    }
    /* Uniform in lo..hi (inclusive); the modulo bias is irrelevant here. */
    size_t range(size_t lo, size_t hi)
    {
        return lo + (size_t)((next() >> 11) % (hi - lo + 1));
    }
};

/* obm's slow paths while a benchmark runs, per 1,000 of its operations,
 * as counters named obm_<kind> (bench/run.py tabulates them). Only when obm
 * serves malloc (obm_stats_get found with dlsym: the binary does not link
 * obm) and google-benchmark runs the benchmark on one thread (threads the
 * benchmark makes itself are counted: the statistics are process-wide).
 * Read before and after the whole benchmark function, outside its timed
 * loop; its set-up is included, a few slow paths against millions of
 * operations. */
class SlowPaths
{
  public:
    explicit SlowPaths(benchmark::State &state) : state_(state)
    {
        if (state.threads() == 1)
            get_ = (Get)dlsym(RTLD_DEFAULT, "obm_stats_get");
        if (get_ != nullptr && !read(before_))
            get_ = nullptr;
    }
    ~SlowPaths()
    {
        obm_stats_t after;
        if (get_ == nullptr || state_.items_processed() <= 0 || !read(after))
            return;
        const double per_kop = 1000.0 / (double)state_.items_processed();
        for (const Kind &k : kKinds)
            state_.counters[k.name] = (double)(after.*k.field - before_.*k.field) * per_kop;
    }
    SlowPaths(const SlowPaths &) = delete;
    SlowPaths &operator=(const SlowPaths &) = delete;

  private:
    using Get = int (*)(obm_stats_t *);
    struct Kind {
        const char *name;
        size_t obm_stats_t::*field;
    };
    static constexpr Kind kKinds[] = {
        {"obm_slow_mallocs", &obm_stats_t::slow_mallocs_total},
        {"obm_slow_frees", &obm_stats_t::slow_frees_total},
        {"obm_carves", &obm_stats_t::carves_total},
        {"obm_remote_collects", &obm_stats_t::remote_collects_total},
        {"obm_pools_used_to_full", &obm_stats_t::pools_used_to_full_total},
        {"obm_pools_full_to_used", &obm_stats_t::pools_full_to_used_total},
        {"obm_pools_emptied", &obm_stats_t::pools_emptied_total},
        {"obm_pools_from_arenas", &obm_stats_t::pools_from_arenas_total},
        {"obm_pools_to_arenas", &obm_stats_t::pools_to_arenas_total},
        {"obm_arenas_mapped", &obm_stats_t::arenas_allocated_total},
        {"obm_arenas_unmapped", &obm_stats_t::arenas_released_total},
    };
    bool read(obm_stats_t &s) const
    {
        s.size = sizeof s;
        return get_(&s) == 0;
    }
    benchmark::State &state_;
    Get get_ = nullptr;
    obm_stats_t before_;
};

constexpr size_t kLiveBlocks = 10000; /* the live set of BM_pair_live */
constexpr size_t kRingSlots = 1000;   /* live slots of the churn rings */
constexpr size_t kSizeTable = 8192;   /* pre-generated sizes, a power of two */

/* The live set: kLiveBlocks blocks of mixed small sizes (8..512), the same
 * as bench/pairs.c's "live". */
std::vector<void *> alloc_live_set()
{
    std::vector<void *> live(kLiveBlocks);
    Rng rng(1);
    for (auto &p : live) {
        p = malloc(rng.range(8, 512));
        benchmark::DoNotOptimize(p);
    }
    return live;
}

void free_all(std::vector<void *> &blocks)
{
    for (void *p : blocks)
        free(p);
    blocks.clear();
}

/* malloc(size) + free pairs, size = range(0); op = one pair. */
void pairs(benchmark::State &state)
{
    const size_t size = (size_t)state.range(0);
    for (auto _ : state) {
        void *p = malloc(size);
        benchmark::DoNotOptimize(p);
        free(p);
    }
    state.SetItemsProcessed(state.iterations());
}

/* Pairs with 10,000 live blocks of mixed small sizes around. */
void BM_pair_live(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    std::vector<void *> live = alloc_live_set();
    pairs(state);
    free_all(live);
    state.SetLabel("op = malloc+free pair, 10000 live blocks");
}

/* Pairs with nothing else of ours live: an allocator that gives its last
 * page (pool, run, span) back on every free pays for it here. */
void BM_pair_alone(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    pairs(state);
    state.SetLabel("op = malloc+free pair, nothing else live");
}

/* Allocate N blocks of random sizes 8..512, then free them in a random
 * (pre-shuffled) order; op = one malloc or one free, 2N per iteration. */
void BM_batch_random(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    const size_t n = (size_t)state.range(0);
    std::vector<uint32_t> sizes(n);
    std::vector<uint32_t> order(n);
    std::vector<void *> blocks(n);
    Rng rng(2);
    for (auto &s : sizes)
        s = (uint32_t)rng.range(8, 512);
    std::iota(order.begin(), order.end(), 0u);
    for (size_t i = n - 1; i > 0; i--)
        std::swap(order[i], order[rng.range(0, i)]);

    for (auto _ : state) {
        for (size_t i = 0; i < n; i++) {
            void *p = malloc(sizes[i]);
            benchmark::DoNotOptimize(p);
            blocks[i] = p;
        }
        for (size_t i = 0; i < n; i++)
            free(blocks[order[i]]);
    }
    state.SetItemsProcessed(state.iterations() * 2 * (int64_t)n);
    state.SetLabel("op = one malloc or one free (random sizes 8..512, random free order)");
}

/* One block grown by realloc from 16 to 4096 bytes in steps of 16, then
 * freed; op = one realloc (255 per chain; the first malloc and the final
 * free are in the time, not in the count). */
void BM_realloc_chain(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    constexpr size_t kFirst = 16, kLast = 4096, kStep = 16;
    constexpr int64_t kReallocs = (kLast - kFirst) / kStep;
    for (auto _ : state) {
        void *p = malloc(kFirst);
        benchmark::DoNotOptimize(p);
        for (size_t size = kFirst + kStep; size <= kLast; size += kStep) {
            p = realloc(p, size);
            benchmark::DoNotOptimize(p);
        }
        free(p);
    }
    state.SetItemsProcessed(state.iterations() * kReallocs);
    state.SetLabel("op = one realloc (16 -> 4096 B in 16 B steps)");
}

/* calloc(1, size) + free, touching the first byte; op = one pair. */
void BM_calloc(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    const size_t size = (size_t)state.range(0);
    for (auto _ : state) {
        void *p = calloc(1, size);
        benchmark::DoNotOptimize(p);
        static_cast<volatile char *>(p)[0] = 1;
        free(p);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetLabel("op = calloc+free pair");
}

/* A ring of kRingSlots live blocks: each step frees the slot's old block
 * and mallocs a new one of the next pre-generated size; op = one pair. */
void ring_churn(benchmark::State &state, const std::vector<uint32_t> &sizes)
{
    std::vector<void *> ring(kRingSlots);
    size_t k = 0;
    for (auto &p : ring) {
        p = malloc(sizes[k++ & (kSizeTable - 1)]);
        benchmark::DoNotOptimize(p);
    }
    size_t slot = 0;
    for (auto _ : state) {
        free(ring[slot]);
        void *p = malloc(sizes[k++ & (kSizeTable - 1)]);
        benchmark::DoNotOptimize(p);
        ring[slot] = p;
        if (++slot == kRingSlots)
            slot = 0;
    }
    free_all(ring);
    state.SetItemsProcessed(state.iterations());
}

/* Every thread churns its own ring, sizes 16..512; nothing is shared. */
void BM_churn_private(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    std::vector<uint32_t> sizes(kSizeTable);
    Rng rng(100 + (uint64_t)state.thread_index());
    for (auto &s : sizes)
        s = (uint32_t)rng.range(16, 512);
    ring_churn(state, sizes);
    state.SetLabel("op = free+malloc pair per thread (ring of 1000, 16..512 B)");
}

/* The same ring, one thread, with a tail of larger blocks: 90% 8..512,
 * 10% 513..4096 (what obm hands to its backing allocator). */
void BM_mixed_large_tail(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    std::vector<uint32_t> sizes(kSizeTable);
    Rng rng(3);
    for (auto &s : sizes)
        s = (uint32_t)(rng.range(0, 9) == 0 ? rng.range(513, 4096) : rng.range(8, 512));
    ring_churn(state, sizes);
    state.SetLabel("op = free+malloc pair (ring of 1000, 90% 8..512 B, 10% 513..4096 B)");
}

/* ---- bignum-like: many short-lived 16..64 B blocks ----
 *
 * kBigVars numbers, each an array of 2..8 64-bit limbs in a block of its
 * own (16..64 B), the way a bignum library stores small integers. A step
 * picks numbers at random and does one of: d = x + y, d = x * m + d (the
 * product a temporary, freed right after), d <<= 64 (grown by realloc),
 * d mod 2^(64 k) (shrunk by realloc). Each result is a fresh block sized
 * for the worst case and shrunk by realloc to its length (as a library
 * normalises), and d's old block is freed: most blocks live for a few
 * thousand steps at most, temporaries for one. Arithmetic is mod 2^512.
 *
 * The same steps run again after the timed loop on fixed slots that never
 * touch malloc; the numbers must come out the same (a checksum of every
 * limb), so an allocator that hands out overlapping blocks or loses a
 * realloc's contents fails the benchmark instead of timing it. */

constexpr size_t kBigVars = 4096;
constexpr size_t kMinLimbs = 2, kMaxLimbs = 8;

struct Num {
    uint64_t *limb;
    size_t len;
};

/* Leading zero limbs dropped, down to kMinLimbs. */
size_t limbs_normalized(const uint64_t *r, size_t n)
{
    while (n > kMinLimbs && r[n - 1] == 0)
        n--;
    return n;
}

/* r = a + b; r has room for min(max(la, lb) + 1, kMaxLimbs) limbs. */
size_t limbs_add(uint64_t *r, const uint64_t *a, size_t la, const uint64_t *b, size_t lb)
{
    const size_t n = std::min(std::max(la, lb) + 1, kMaxLimbs);
    uint64_t carry = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t x = i < la ? a[i] : 0, y = i < lb ? b[i] : 0;
        uint64_t s = x + carry;
        carry = s < carry;
        s += y;
        carry += s < y;
        r[i] = s;
    }
    return limbs_normalized(r, n);
}

/* r = a * m; r has room for min(la + 1, kMaxLimbs) limbs. */
size_t limbs_mul1(uint64_t *r, const uint64_t *a, size_t la, uint64_t m)
{
    const size_t n = std::min(la + 1, kMaxLimbs);
    unsigned __int128 carry = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned __int128 p = (unsigned __int128)(i < la ? a[i] : 0) * m + carry;
        r[i] = (uint64_t)p;
        carry = p >> 64;
    }
    return limbs_normalized(r, n);
}

/* Numbers in malloc'd blocks sized to their limbs; counts the calls. */
struct HeapLimbs {
    int64_t calls = 0;
    uint64_t *alloc(size_t n)
    {
        calls++;
        void *p = malloc(n * sizeof(uint64_t));
        benchmark::DoNotOptimize(p);
        return static_cast<uint64_t *>(p);
    }
    uint64_t *resize(uint64_t *p, size_t n)
    {
        calls++;
        void *q = realloc(p, n * sizeof(uint64_t));
        benchmark::DoNotOptimize(q);
        return static_cast<uint64_t *>(q);
    }
    void release(uint64_t *p)
    {
        calls++;
        free(p);
    }
};

/* The reference: fixed kMaxLimbs-limb slots from one array, no allocator. */
struct SlotLimbs {
    std::vector<uint64_t> store;
    std::vector<uint64_t *> spare;
    explicit SlotLimbs(size_t slots) : store(slots * kMaxLimbs)
    {
        for (size_t i = 0; i < slots; i++)
            spare.push_back(&store[i * kMaxLimbs]);
    }
    uint64_t *alloc(size_t)
    {
        uint64_t *p = spare.back();
        spare.pop_back();
        return p;
    }
    uint64_t *resize(uint64_t *p, size_t)
    {
        return p;
    }
    void release(uint64_t *p)
    {
        spare.push_back(p);
    }
};

/* d = a fresh block holding n limbs of r: shrunk to n (from room) first. */
template <class A> void bignum_assign(A &a, Num &d, uint64_t *r, size_t n, size_t room)
{
    if (n < room)
        r = a.resize(r, n);
    a.release(d.limb);
    d = {r, n};
}

template <class A> void bignum_step(A &a, std::vector<Num> &v, Rng &rng)
{
    const uint64_t r = rng.next();
    const Num &x = v[r % kBigVars], &y = v[(r >> 16) % kBigVars];
    Num &d = v[(r >> 32) % kBigVars];
    switch ((r >> 61) & 7) {
    case 0:
    case 1: { /* d = x + y */
        const size_t room = std::min(std::max(x.len, y.len) + 1, kMaxLimbs);
        uint64_t *t = a.alloc(room);
        bignum_assign(a, d, t, limbs_add(t, x.limb, x.len, y.limb, y.len), room);
        break;
    }
    case 2:
    case 3: { /* d = x * m + d, the product a temporary */
        const size_t proom = std::min(x.len + 1, kMaxLimbs);
        uint64_t *p = a.alloc(proom);
        const size_t pn = limbs_mul1(p, x.limb, x.len, y.limb[0] | 1);
        const size_t room = std::min(std::max(pn, d.len) + 1, kMaxLimbs);
        uint64_t *t = a.alloc(room);
        const size_t n = limbs_add(t, p, pn, d.limb, d.len);
        a.release(p);
        bignum_assign(a, d, t, n, room);
        break;
    }
    case 4: /* d <<= 64, the new low limb from x */
        if (d.len < kMaxLimbs) {
            d.limb = a.resize(d.limb, d.len + 1);
            memmove(d.limb + 1, d.limb, d.len * sizeof(uint64_t));
            d.limb[0] = x.limb[0];
            d.len++;
            break;
        }
        /* full: truncate instead */
        [[fallthrough]];
    default: { /* d = d mod 2^(64 k), k in kMinLimbs..d.len */
        const size_t k = kMinLimbs + (size_t)((r >> 48) % (d.len - kMinLimbs + 1));
        if (k < d.len) {
            d.limb = a.resize(d.limb, k);
            d.len = k;
        }
        break;
    }
    }
}

template <class A> std::vector<Num> bignum_init(A &a)
{
    std::vector<Num> v(kBigVars);
    Rng rng(5);
    for (auto &n : v) {
        n.len = rng.range(kMinLimbs, kMaxLimbs);
        n.limb = a.alloc(n.len);
        for (size_t i = 0; i < n.len; i++)
            n.limb[i] = rng.next();
    }
    return v;
}

uint64_t bignum_checksum(const std::vector<Num> &v)
{
    uint64_t h = 0;
    for (const auto &n : v) {
        h = (h ^ n.len) * 0x100000001b3ull;
        for (size_t i = 0; i < n.len; i++)
            h = (h ^ n.limb[i]) * 0x100000001b3ull;
    }
    return h;
}

void BM_bignum(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    HeapLimbs heap;
    std::vector<Num> v = bignum_init(heap);
    Rng rng(6);
    const int64_t calls0 = heap.calls;
    for (auto _ : state)
        bignum_step(heap, v, rng);
    const int64_t calls = heap.calls - calls0;
    const uint64_t got = bignum_checksum(v);
    for (auto &n : v)
        free(n.limb);

    SlotLimbs slots(kBigVars + 2); /* the numbers and up to two temporaries */
    std::vector<Num> w = bignum_init(slots);
    Rng wrng(6);
    for (int64_t i = 0; i < (int64_t)state.iterations(); i++)
        bignum_step(slots, w, wrng);
    if (got != bignum_checksum(w))
        state.SkipWithError("bignum: the numbers differ from the reference run's");
    state.SetItemsProcessed(calls);
    state.SetLabel("op = one malloc, realloc or free (4096 numbers of 16..64 B, temporaries)");
}

/* ---- glibc's simple-bench shape ----
 *
 * Batches of range(1) blocks of range(0) bytes: all malloc'd, then all
 * freed, first in, first out (BM_simple_fifo) or last in, first out
 * (BM_simple_lifo); op = one malloc+free. Each block gets its index
 * written in, read back before its free: a block handed out twice in a
 * batch fails the benchmark. */
void simple_batches(benchmark::State &state, bool lifo)
{
    const size_t size = (size_t)state.range(0), n = (size_t)state.range(1);
    std::vector<uint64_t *> blocks(n);
    uint64_t bad = 0;
    for (auto _ : state) {
        for (size_t i = 0; i < n; i++) {
            void *p = malloc(size);
            benchmark::DoNotOptimize(p);
            blocks[i] = static_cast<uint64_t *>(p);
            *blocks[i] = i;
        }
        for (size_t k = 0; k < n; k++) {
            const size_t i = lifo ? n - 1 - k : k;
            bad |= *blocks[i] ^ i;
            free(blocks[i]);
        }
    }
    if (bad)
        state.SkipWithError("simple: a block was handed out twice in a batch");
    state.SetItemsProcessed(state.iterations() * (int64_t)n);
    state.SetLabel(std::string("op = one malloc+free (batches freed ") +
                   (lifo ? "LIFO)" : "FIFO)"));
}

void BM_simple_fifo(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    simple_batches(state, false);
}

void BM_simple_lifo(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    simple_batches(state, true);
}

/* glibc's sizes and batch lengths. */
void simple_args(benchmark::internal::Benchmark *b)
{
    for (int64_t size : {16, 32, 64})
        for (int64_t n : {25, 100, 400, 1600})
            b->Args({size, n});
}

/* A bounded lock-free single-producer/single-consumer ring of pointers.
 * Each side publishes its index every kBatch elements (the producer also at
 * the end, flush()), so the two sides never write the same cache lines of
 * the ring at the same time and the index lines change hands once per batch:
 * the ring costs little next to the allocator. */
class Spsc
{
  public:
    static constexpr size_t kCap = 4096; /* powers of two */
    static constexpr size_t kBatch = 64;

    void push(void *p)
    {
        for (unsigned spins = 0; tail_local_ - head_cache_ == kCap; spins++) {
            head_cache_ = head_.load(std::memory_order_acquire);
            if (tail_local_ - head_cache_ == kCap)
                backoff(spins);
        }
        slots_[tail_local_++ & (kCap - 1)] = p;
        if ((tail_local_ & (kBatch - 1)) == 0)
            tail_.store(tail_local_, std::memory_order_release);
    }

    void flush()
    {
        tail_.store(tail_local_, std::memory_order_release);
    }

    void *pop()
    {
        for (unsigned spins = 0; head_local_ == tail_cache_; spins++) {
            tail_cache_ = tail_.load(std::memory_order_acquire);
            if (head_local_ == tail_cache_)
                backoff(spins);
        }
        void *p = slots_[head_local_++ & (kCap - 1)];
        if ((head_local_ & (kBatch - 1)) == 0)
            head_.store(head_local_, std::memory_order_release);
        return p;
    }

  private:
    /* Spin a little, then yield: with fewer free CPUs than the two
     * threads, a pure spin would hold the CPU the other side needs. */
    static void backoff(unsigned spins)
    {
#if defined(__x86_64__) || defined(__i386__)
        if (spins < 256) {
            __builtin_ia32_pause();
            return;
        }
#endif
        std::this_thread::yield();
    }

    /* Each side's published index, then its private state on its own
     * cache line: its unpublished index and its copy of the other's. */
    alignas(64) std::atomic<size_t> tail_{0}; /* published by the producer */
    alignas(64) std::atomic<size_t> head_{0}; /* published by the consumer */
    alignas(64) size_t tail_local_ = 0;       /* the producer's own */
    size_t head_cache_ = 0;
    alignas(64) size_t head_local_ = 0; /* the consumer's own */
    size_t tail_cache_ = 0;
    alignas(64) void *slots_[kCap];
};

/* Pin the calling thread to the n-th CPU of the process's affinity mask
 * (nothing when the mask has fewer). */
void pin_to_nth_cpu(const cpu_set_t &mask, int n)
{
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &mask) && n-- == 0) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof one, &one);
            return;
        }
    }
}

/* One producer thread mallocs 64-byte blocks and writes a word in each; one
 * consumer thread reads the word and frees the block, so every free is
 * remote. Timed from before the two threads start to after both are
 * joined; op = one object transferred.
 *
 * The two threads are pinned to the first two CPUs of the process's
 * affinity mask (when it has two): the free is then remote in hardware
 * too, and the result does not depend on whether the scheduler happened to
 * put both threads on one CPU, where they take turns in cache (measured on
 * a 2-CPU VM: unpinned runs swung between those two regimes). */
void BM_producer_consumer(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    constexpr uint64_t kObjects = 1000000;
    cpu_set_t mask;
    sched_getaffinity(0, sizeof mask, &mask);
    for (auto _ : state) {
        auto *ring = new Spsc;
        uint64_t sum = 0;
        const auto start = std::chrono::steady_clock::now();
        std::thread producer([ring, &mask] {
            pin_to_nth_cpu(mask, 0);
            for (uint64_t i = 0; i < kObjects; i++) {
                void *p = malloc(64);
                benchmark::DoNotOptimize(p);
                *static_cast<uint64_t *>(p) = i;
                ring->push(p);
            }
            ring->flush();
        });
        std::thread consumer([ring, &sum, &mask] {
            pin_to_nth_cpu(mask, 1);
            uint64_t s = 0;
            for (uint64_t i = 0; i < kObjects; i++) {
                void *p = ring->pop();
                s += *static_cast<uint64_t *>(p);
                free(p);
            }
            sum = s;
        });
        producer.join();
        consumer.join();
        const auto end = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(end - start).count());
        delete ring;
        if (sum != kObjects * (kObjects - 1) / 2) {
            state.SkipWithError("producer/consumer: objects lost or corrupted");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * (int64_t)kObjects);
    state.SetLabel("op = one 64 B object malloc'd by the producer, freed by the consumer");
}

/* ---- wider size ranges, 1024 live per thread ----
 *
 * Each thread churns its own ring of kWideSlots blocks (free the oldest,
 * malloc the next size: every block lives kWideSlots steps), sizes from a
 * pre-generated table. Each block gets a stamp written in, read back before
 * its free: a block handed out twice fails the benchmark. Sizes above 512 B
 * are what obm hands to its backing allocator. */

constexpr size_t kWideSlots = 1024;

/* 8..16000 B, the density falling linearly to nothing at 16000. */
uint32_t size_linear(Rng &rng)
{
    const double u = (double)(rng.next() >> 11) * 0x1p-53;
    return (uint32_t)(8 + 15992.0 * (1 - std::sqrt(1 - u)));
}

/* 4..32768 B with density proportional to 1 / size^2 (inverse transform). */
uint32_t size_inverse_square(Rng &rng)
{
    const double u = (double)(rng.next() >> 11) * 0x1p-53;
    return (uint32_t)std::min(32768.0, 1 / (0.25 - u * (0.25 - 1.0 / 32768)));
}

void checked_ring_churn(benchmark::State &state, uint32_t (*size)(Rng &))
{
    std::vector<uint32_t> sizes(kSizeTable);
    Rng rng(200 + (uint64_t)state.thread_index());
    for (auto &s : sizes)
        s = size(rng);
    std::vector<uint32_t *> ring(kWideSlots);
    uint32_t k = 0, bad = 0;
    for (auto &p : ring) {
        p = static_cast<uint32_t *>(malloc(sizes[k & (kSizeTable - 1)]));
        *p = k++;
    }
    size_t slot = 0;
    for (auto _ : state) {
        bad |= *ring[slot] ^ (k - (uint32_t)kWideSlots);
        free(ring[slot]);
        void *p = malloc(sizes[k & (kSizeTable - 1)]);
        benchmark::DoNotOptimize(p);
        ring[slot] = static_cast<uint32_t *>(p);
        *ring[slot] = k++;
        if (++slot == kWideSlots)
            slot = 0;
    }
    for (auto p : ring)
        free(p);
    if (bad)
        state.SkipWithError("churn: a block's stamp was overwritten");
    state.SetItemsProcessed(state.iterations());
}

void BM_churn_linear(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    checked_ring_churn(state, size_linear);
    state.SetLabel("op = free+malloc pair per thread (ring of 1024, 8..16000 B, linear drop-off)");
}

void BM_churn_invsq(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    checked_ring_churn(state, size_inverse_square);
    state.SetLabel("op = free+malloc pair per thread (ring of 1024, 4..32768 B, 1/size^2)");
}

/* ---- objects handed between threads in batches ----
 *
 * A batch is kBatchObjects blocks malloc'd by one thread and freed by
 * another; it travels through a BatchQueue (a bounded FIFO of batch
 * pointers under a mutex: one lock per 64 objects, little next to the
 * allocator). Every block gets a value written in by its producer; its
 * consumer adds up what it reads, and the two sums must agree. */

constexpr size_t kBatchObjects = 64;

struct Batch {
    void *obj[kBatchObjects];
};

class BatchQueue
{
  public:
    /* Room for cap batches: a put never waits when no more exist. */
    explicit BatchQueue(size_t cap) : slots_(cap)
    {
    }

    void put(Batch *b)
    {
        {
            std::lock_guard<std::mutex> lock(m_);
            slots_[(head_ + count_++) % slots_.size()] = b;
        }
        cv_.notify_one();
    }

    Batch *get()
    {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [this] { return count_ > 0; });
        Batch *b = slots_[head_];
        head_ = (head_ + 1) % slots_.size();
        count_--;
        return b;
    }

  private:
    std::mutex m_;
    std::condition_variable cv_;
    std::vector<Batch *> slots_;
    size_t head_ = 0, count_ = 0;
};

/* Fill b with kBatchObjects blocks of 8..hi bytes, each holding a value
 * from rng; returns the sum of the values. */
uint64_t batch_fill(Batch *b, Rng &rng, size_t hi)
{
    uint64_t sum = 0;
    for (auto &o : b->obj) {
        const uint64_t v = rng.next();
        void *p = malloc(rng.range(8, hi));
        benchmark::DoNotOptimize(p);
        *static_cast<uint64_t *>(p) = v;
        o = p;
        sum += v;
    }
    return sum;
}

/* Free b's blocks; returns the sum of the values they held. */
uint64_t batch_drain(Batch *b)
{
    uint64_t sum = 0;
    for (void *p : b->obj) {
        sum += *static_cast<uint64_t *>(p);
        free(p);
    }
    return sum;
}

/* range(0) threads in a ring: each mallocs a batch of 8..1000 B blocks,
 * hands it to the next thread and frees the batch the previous one handed
 * it, 1M objects in all; op = one object handed over. Each thread keeps
 * kHandoffDepth batches on their way, so it seldom waits for the previous
 * one. */
void BM_handoff(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    const size_t nthreads = (size_t)state.range(0);
    constexpr size_t kHandoffDepth = 8;
    const size_t rounds = 1000000 / kBatchObjects / nthreads;
    cpu_set_t mask;
    sched_getaffinity(0, sizeof mask, &mask);
    for (auto _ : state) {
        std::vector<Batch> batches(nthreads * kHandoffDepth);
        std::vector<std::unique_ptr<BatchQueue>> inbox;
        for (size_t t = 0; t < nthreads; t++)
            inbox.push_back(std::make_unique<BatchQueue>(batches.size()));
        std::vector<uint64_t> made(nthreads), freed(nthreads);
        std::vector<std::thread> threads;
        const auto start = std::chrono::steady_clock::now();
        for (size_t t = 0; t < nthreads; t++) {
            threads.emplace_back([&, t] {
                pin_to_nth_cpu(mask, (int)t);
                Rng rng(300 + t);
                BatchQueue &next = *inbox[(t + 1) % nthreads], &own = *inbox[t];
                for (size_t d = 0; d < kHandoffDepth; d++) {
                    Batch *b = &batches[t * kHandoffDepth + d];
                    made[t] += batch_fill(b, rng, 1000);
                    next.put(b);
                }
                for (size_t r = kHandoffDepth; r < rounds; r++) {
                    Batch *b = own.get();
                    freed[t] += batch_drain(b);
                    made[t] += batch_fill(b, rng, 1000);
                    next.put(b);
                }
                for (size_t d = 0; d < kHandoffDepth; d++)
                    freed[t] += batch_drain(own.get());
            });
        }
        for (auto &th : threads)
            th.join();
        const auto end = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(end - start).count());
        if (std::accumulate(made.begin(), made.end(), 0ull) !=
            std::accumulate(freed.begin(), freed.end(), 0ull)) {
            state.SkipWithError("handoff: objects lost or corrupted");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * (int64_t)(rounds * kBatchObjects * nthreads));
    state.SetLabel("op = one 8..1000 B object malloc'd by one thread, freed by the next");
}

/* Two producers malloc batches of 8..512 B blocks into one queue, two
 * consumers take whichever batch comes next and free it: any consumer
 * frees any producer's blocks. 1M objects in all; op = one object. */
void BM_mpmc(benchmark::State &state)
{
    SlowPaths slow_paths(state);
    constexpr size_t kProducers = 2, kConsumers = 2, kInFlight = 64;
    constexpr size_t kRounds = 1000000 / kBatchObjects / kProducers;
    cpu_set_t mask;
    sched_getaffinity(0, sizeof mask, &mask);
    for (auto _ : state) {
        std::vector<Batch> batches(kInFlight);
        BatchQueue empty(kInFlight), full(kInFlight + kConsumers);
        for (auto &b : batches)
            empty.put(&b);
        std::vector<uint64_t> made(kProducers), freed(kConsumers);
        std::vector<std::thread> threads;
        const auto start = std::chrono::steady_clock::now();
        for (size_t t = 0; t < kProducers; t++) {
            threads.emplace_back([&, t] {
                pin_to_nth_cpu(mask, (int)t);
                Rng rng(400 + t);
                for (size_t r = 0; r < kRounds; r++) {
                    Batch *b = empty.get();
                    made[t] += batch_fill(b, rng, 512);
                    full.put(b);
                }
            });
        }
        for (size_t t = 0; t < kConsumers; t++) {
            threads.emplace_back([&, t] {
                pin_to_nth_cpu(mask, (int)(kProducers + t));
                while (Batch *b = full.get()) {
                    freed[t] += batch_drain(b);
                    empty.put(b);
                }
            });
        }
        for (size_t t = 0; t < kProducers; t++)
            threads[t].join();
        for (size_t t = 0; t < kConsumers; t++)
            full.put(nullptr); /* one end mark for each consumer */
        for (size_t t = kProducers; t < threads.size(); t++)
            threads[t].join();
        const auto end = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(end - start).count());
        if (std::accumulate(made.begin(), made.end(), 0ull) !=
            std::accumulate(freed.begin(), freed.end(), 0ull)) {
            state.SkipWithError("mpmc: objects lost or corrupted");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * (int64_t)(kRounds * kBatchObjects * kProducers));
    state.SetLabel("op = one 8..512 B object, 2 producers -> one queue -> 2 consumers");
}

/* The allocator in use, for the output's context. */
std::string allocator_name()
{
    using MiVersion = int (*)(void);
    using TcVersion = const char *(*)(int *, int *, const char **);
    using Mallctl = int (*)(const char *, void *, size_t *, void *, size_t);
    if (dlsym(RTLD_DEFAULT, "obm_owns"))
        return "obm";
    if (auto mi_version = (MiVersion)dlsym(RTLD_DEFAULT, "mi_version"))
        return "mimalloc " + std::to_string(mi_version());
    if (auto tc_version = (TcVersion)dlsym(RTLD_DEFAULT, "tc_version"))
        return tc_version(nullptr, nullptr, nullptr);
    if (dlsym(RTLD_DEFAULT, "__TBB_malloc_proxy"))
        return "tbbmalloc";
    if (auto mallctl = (Mallctl)dlsym(RTLD_DEFAULT, "mallctl")) {
        const char *version = nullptr;
        size_t len = sizeof version;
        if (mallctl("version", &version, &len, nullptr, 0) == 0 && version)
            return std::string("jemalloc ") + version;
        return "jemalloc";
    }
    return std::string("glibc ") + gnu_get_libc_version();
}

} // namespace

/* Single-threaded benchmarks first (see the top of the file). */
BENCHMARK(BM_pair_live)->Arg(16)->Arg(64)->Arg(256)->Arg(512);
BENCHMARK(BM_pair_alone)->Arg(16)->Arg(64)->Arg(256)->Arg(512);
BENCHMARK(BM_batch_random)->Arg(10000)->Arg(1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_realloc_chain)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_calloc)->Arg(64)->Arg(512)->Arg(4096);
BENCHMARK(BM_mixed_large_tail);
BENCHMARK(BM_bignum);
BENCHMARK(BM_simple_fifo)->Apply(simple_args);
BENCHMARK(BM_simple_lifo)->Apply(simple_args);
/* Threads from here on. */
BENCHMARK(BM_churn_private)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();
BENCHMARK(BM_churn_linear)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_churn_invsq)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_producer_consumer)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_handoff)
    ->Arg(2)
    ->Arg(4)
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_mpmc)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

int main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::AddCustomContext("allocator", allocator_name());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
