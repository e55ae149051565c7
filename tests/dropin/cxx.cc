// Drop-in: a C++ program on obm. Containers churn with content checks,
// operator new/delete of small, medium and large objects, aligned new
// (alignas(64), which libstdc++ sends to aligned_alloc: the backing
// allocator's), new[]/delete[] with array cookies,
// exceptions, and containers built in one std::thread and destroyed in
// another.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dropin.h"

namespace
{

// Deterministic contents: element i of a container seeded with `seed`.
uint64_t value_of(uint64_t seed, uint64_t i)
{
    uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ull + i;
    x ^= x >> 31;
    return x * 0xbf58476d1ce4e5b9ull;
}

std::string text_of(uint64_t seed, size_t len)
{
    std::string s;
    for (size_t i = 0; i < len; i++)
        s.push_back(static_cast<char>('a' + value_of(seed, i) % 26));
    return s;
}

bool vector_ok(const std::vector<uint64_t> &v, uint64_t seed)
{
    for (size_t i = 0; i < v.size(); i++)
        if (v[i] != value_of(seed, i))
            return false;
    return true;
}

void test_vector_churn(void **)
{
    std::mt19937 rng(1);
    std::vector<std::vector<uint64_t>> live(256);
    std::vector<uint64_t> seeds(live.size());
    for (int iter = 0; iter < 20000; iter++) {
        size_t k = rng() % live.size();
        assert_true(vector_ok(live[k], seeds[k]));
        std::vector<uint64_t>().swap(live[k]); // free it
        seeds[k] = static_cast<uint64_t>(iter);
        size_t n = rng() % (iter % 16 == 0 ? 3000 : 70); // mostly small blocks
        for (size_t i = 0; i < n; i++)
            live[k].push_back(value_of(seeds[k], i)); // grows by reallocation
        if (iter % 5 == 0)
            live[k].shrink_to_fit();
    }
    for (size_t k = 0; k < live.size(); k++)
        assert_true(vector_ok(live[k], seeds[k]));
}

void test_string_churn(void **)
{
    std::mt19937 rng(2);
    std::vector<std::string> live(512);
    std::vector<std::pair<uint64_t, size_t>> keys(live.size(), {0, 0});
    for (int iter = 0; iter < 40000; iter++) {
        size_t k = rng() % live.size();
        assert_true(live[k] == text_of(keys[k].first, keys[k].second));
        size_t len = rng() % (iter % 32 == 0 ? 5000 : 200);
        keys[k] = {static_cast<uint64_t>(iter), len};
        // Built piecewise so the string reallocates on the way.
        std::string s;
        std::string full = text_of(keys[k].first, len);
        for (size_t i = 0; i < len; i += 7)
            s += full.substr(i, 7);
        live[k] = std::move(s);
    }
    std::ostringstream out;
    for (size_t k = 0; k < live.size(); k++) {
        assert_true(live[k] == text_of(keys[k].first, keys[k].second));
        out << live[k] << '\n';
    }
    assert_true(out.str().size() > live.size());
}

void test_map_churn(void **)
{
    std::mt19937 rng(3);
    std::map<uint32_t, std::string> ordered;
    std::unordered_map<std::string, std::vector<uint64_t>> hashed;
    for (int iter = 0; iter < 60000; iter++) {
        uint32_t key = rng() % 4000;
        std::string name = "key-" + std::to_string(key);
        if (rng() % 3 == 0) {
            ordered.erase(key);
            hashed.erase(name);
        } else {
            ordered[key] = text_of(key, key % 100);
            std::vector<uint64_t> v;
            for (uint32_t i = 0; i < key % 50; i++)
                v.push_back(value_of(key, i));
            hashed[name] = std::move(v);
        }
    }
    assert_true(ordered.size() == hashed.size());
    uint32_t prev = 0;
    bool first = true;
    for (const auto &kv : ordered) {
        assert_true(first || kv.first > prev);
        first = false;
        prev = kv.first;
        assert_true(kv.second == text_of(kv.first, kv.first % 100));
        auto it = hashed.find("key-" + std::to_string(kv.first));
        assert_true(it != hashed.end());
        assert_int_equal(it->second.size(), kv.first % 50);
        assert_true(vector_ok(it->second, kv.first));
    }
}

struct Small {
    uint64_t a, b, c;
};
struct Medium {
    unsigned char bytes[5000];
};
struct Large {
    unsigned char bytes[40000];
};
static_assert(sizeof(Medium) > OBM_SMALL_MAX && sizeof(Medium) <= OBM_MEDIUM_MAX, "medium");
static_assert(sizeof(Large) > OBM_MEDIUM_MAX, "large");

void test_new_delete(void **)
{
    std::vector<Small *> smalls;
    std::vector<Medium *> mediums;
    std::vector<Large *> larges;
    for (int i = 0; i < 20000; i++) {
        Small *s = new Small{uint64_t(i), uint64_t(i) * 3, ~uint64_t(i)};
        assert_true(dropin_owns(s)); // operator new reaches obm's malloc
        smalls.push_back(s);
        if (i % 20 == 0) {
            Medium *m = new Medium;
            assert_true(dropin_owns(m)); // up to OBM_MEDIUM_MAX: obm's medium pools
            dropin_fill(m->bytes, sizeof(m->bytes));
            mediums.push_back(m);
        }
        if (i % 100 == 0) {
            Large *l = new Large;
            assert_false(dropin_owns(l)); // > OBM_MEDIUM_MAX: the backing allocator
            dropin_fill(l->bytes, sizeof(l->bytes));
            larges.push_back(l);
        }
    }
    for (size_t i = 0; i < smalls.size(); i++) {
        assert_true(smalls[i]->a == i && smalls[i]->b == 3 * i && smalls[i]->c == ~uint64_t(i));
        delete smalls[i];
    }
    for (Medium *m : mediums) {
        assert_true(dropin_check(m->bytes, sizeof(m->bytes)));
        delete m;
    }
    for (Large *l : larges) {
        assert_true(dropin_check(l->bytes, sizeof(l->bytes)));
        delete l;
    }
    auto u = std::make_unique<Small>();
    auto sp = std::make_shared<std::string>(300, 'x');
    assert_true(dropin_owns(u.get()));
    assert_true(*sp == std::string(300, 'x'));
}

struct alignas(64) Line {
    uint64_t words[8];
};
struct alignas(32) Half {
    uint64_t words[3];
};

void test_aligned_new(void **)
{
    static_assert(alignof(Line) == 64, "alignas(64)");
    std::vector<Line *> lines;
    std::vector<Half *> halves;
    for (int i = 0; i < 4000; i++) {
        Line *l = new Line; // operator new(size_t, align_val_t)
        assert_int_equal(reinterpret_cast<uintptr_t>(l) % 64, 0);
        assert_false(dropin_owns(l)); // aligned above 16: the backing allocator
        dropin_fill(l, sizeof(*l));
        lines.push_back(l);
        Half *h = new Half;
        assert_int_equal(reinterpret_cast<uintptr_t>(h) % 32, 0);
        assert_false(dropin_owns(h));
        dropin_fill(h, sizeof(*h));
        halves.push_back(h);
    }
    Line *arr = new Line[37];
    assert_int_equal(reinterpret_cast<uintptr_t>(arr) % 64, 0);
    dropin_fill(arr, 37 * sizeof(Line));
    std::vector<Line> v(100); // std::allocator<Line> uses aligned new too
    assert_int_equal(reinterpret_cast<uintptr_t>(v.data()) % 64, 0);
    for (size_t i = 0; i < lines.size(); i++) {
        assert_true(dropin_check(lines[i], sizeof(Line)));
        assert_true(dropin_check(halves[i], sizeof(Half)));
        delete lines[i];
        delete halves[i];
    }
    assert_true(dropin_check(arr, 37 * sizeof(Line)));
    delete[] arr;
}

std::atomic<int> tracked_live{0};

// A non-trivial destructor makes new[] store an element count (a cookie)
// before the elements, so delete[] frees a pointer new[] did not return.
struct Tracked {
    std::string name;
    Tracked() : name(text_of(static_cast<uint64_t>(tracked_live++), 40))
    {
    }
    ~Tracked()
    {
        tracked_live--;
    }
};

void test_array_new(void **)
{
    for (size_t n = 0; n < 300; n++) {
        Tracked *t = new Tracked[n];
        int *ints = new int[n + 1]();
        char *chars = new char[n * 17 + 1];
        for (size_t i = 0; i <= n; i++)
            assert_int_equal(ints[i], 0);
        dropin_fill(chars, n * 17 + 1);
        assert_int_equal(tracked_live.load(), n);
        assert_true(dropin_check(chars, n * 17 + 1));
        delete[] chars;
        delete[] ints;
        delete[] t;
        assert_int_equal(tracked_live.load(), 0);
    }
}

void test_exceptions(void **)
{
    // __cxa_allocate_exception mallocs each exception object.
    int caught = 0;
    for (int i = 0; i < 5000; i++) {
        try {
            throw std::runtime_error(
                text_of(static_cast<uint64_t>(i), static_cast<size_t>(i % 700)));
        } catch (const std::runtime_error &e) {
            if (std::string(e.what()) == text_of(static_cast<uint64_t>(i), i % 700))
                caught++;
        }
    }
    assert_int_equal(caught, 5000);
}

struct Bundle {
    std::vector<uint64_t> values;
    std::map<int, std::string> names;
    std::unordered_map<int, std::vector<uint64_t>> lists;
};

Bundle build_bundle(uint64_t seed)
{
    Bundle b;
    for (int i = 0; i < 3000; i++)
        b.values.push_back(value_of(seed, static_cast<uint64_t>(i)));
    for (int i = 0; i < 500; i++) {
        b.names[i] = text_of(seed + static_cast<uint64_t>(i), static_cast<size_t>(i % 90));
        std::vector<uint64_t> v;
        for (int j = 0; j < i % 40; j++)
            v.push_back(value_of(seed + static_cast<uint64_t>(i), static_cast<uint64_t>(j)));
        b.lists[i] = std::move(v);
    }
    return b;
}

bool bundle_ok(const Bundle &b, uint64_t seed)
{
    if (!vector_ok(b.values, seed) || b.values.size() != 3000 || b.names.size() != 500)
        return false;
    for (int i = 0; i < 500; i++) {
        auto n = b.names.find(i);
        auto l = b.lists.find(i);
        if (n == b.names.end() || l == b.lists.end())
            return false;
        if (n->second != text_of(seed + static_cast<uint64_t>(i), static_cast<size_t>(i % 90)))
            return false;
        if (l->second.size() != static_cast<size_t>(i % 40) ||
            !vector_ok(l->second, seed + static_cast<uint64_t>(i)))
            return false;
    }
    return true;
}

void test_threads_with_containers(void **)
{
    const int nthreads = 6, rounds = 6;
    std::atomic<int> bad{0};
    // Each round: threads build bundles that main checks and destroys, and
    // destroy bundles that main built (frees from a thread other than the
    // allocating one, both ways).
    for (int r = 0; r < rounds; r++) {
        std::vector<Bundle> built(nthreads);
        std::vector<std::unique_ptr<Bundle>> given(nthreads);
        for (int t = 0; t < nthreads; t++)
            given[t] = std::make_unique<Bundle>(build_bundle(1000u * r + 500u + t));
        std::vector<std::thread> threads;
        for (int t = 0; t < nthreads; t++)
            threads.emplace_back([&, t] {
                uint64_t seed = 1000u * r + t;
                built[t] = build_bundle(seed);
                if (!bundle_ok(built[t], seed))
                    bad++;
                std::unique_ptr<Bundle> mine = std::move(given[t]);
                if (!bundle_ok(*mine, 1000u * r + 500u + t))
                    bad++;
                mine.reset();
                std::string s; // thread-local churn beside the hand-over
                for (int i = 0; i < 2000; i++)
                    s = text_of(static_cast<uint64_t>(i), static_cast<size_t>(i % 300));
            });
        for (auto &th : threads)
            th.join();
        for (int t = 0; t < nthreads; t++)
            assert_true(bundle_ok(built[t], 1000u * r + t));
    }
    assert_int_equal(bad.load(), 0);
}

} // namespace

int main()
{
    dropin_require_obm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_churn), cmocka_unit_test(test_string_churn),
        cmocka_unit_test(test_map_churn),    cmocka_unit_test(test_new_delete),
        cmocka_unit_test(test_aligned_new),  cmocka_unit_test(test_array_new),
        cmocka_unit_test(test_exceptions),   cmocka_unit_test(test_threads_with_containers),
    };
    return DROPIN_RUN_TAP(tests);
}
