// Drop-in, CHECKLIST 32 (tls_destructor_alloc): malloc and free work
//   - in a constructor before main, and in C++ dynamic initialisation;
//   - in pthread_key destructors, including one that sets its key again so
//     it runs a second time;
//   - in C++ thread_local destructors, of threads and of the main thread;
//   - after main returns: atexit handlers, static destructors and an ELF
//     destructor.
// What runs after main cannot print TAP: the last atexit handler to run
// checks every after-main result and _exits 1 on failure, which the TAP
// driver reports as an error; test_exit_path runs the same sequence in a
// child so it also shows as a TAP line.
// [snmalloc multi_threadatexit, multi_setspecific, first_operation,
// teardown; gperftools thread_dealloc]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <pthread.h>

#include "dropin.h"

namespace
{

// Results of the code that runs outside any test function.
std::atomic<int> failures{0};
bool ctor_ran, ctor_owned;
std::atomic<int> key_destructor_calls{0}, tls_destructor_calls{0};
bool main_tls_destroyed, static_destroyed, atexit_ran;

int (*owns_early)(const void *); // dropin_owns needs dropin_require_obm first

// Block i of churn: the size of every class, the small ones (16, 32, ...,
// 512: 32 classes) and the medium ones (640, 768, 896, 1024, 1280, ...,
// 32768: four per doubling, 2^k + j 2^(k-2)), then some large ones.
enum { CHURN_SMALL = 32, CHURN_CLASSES = CHURN_SMALL + 24, CHURN_BLOCKS = CHURN_CLASSES + 8 };
static_assert(CHURN_SMALL == OBM_NSMALL && CHURN_CLASSES == OBM_NCLASSES, "obm's classes");

size_t churn_size(size_t i)
{
    if (i < CHURN_SMALL)
        return 16 * (i + 1);
    if (i < CHURN_CLASSES) {
        size_t k = 9 + (i - CHURN_SMALL) / 4, j = (i - CHURN_SMALL) % 4 + 1;
        return (size_t(1) << k) + (j << (k - 2));
    }
    return OBM_MEDIUM_MAX + 1 + 600 * (i - CHURN_CLASSES);
}

// malloc, fill, check and free blocks of every class and some large ones;
// false when a block is missing, its contents changed, or (once obm_owns
// is known) it is obm's when obm does not serve its size or the reverse.
bool churn(int rounds)
{
    bool ok = true;
    for (int r = 0; r < rounds; r++) {
        void *blocks[CHURN_BLOCKS];
        for (size_t i = 0; i < CHURN_BLOCKS; i++) {
            size_t size = churn_size(i);
            blocks[i] = malloc(size);
            if (blocks[i] == nullptr)
                return false;
            if (owns_early != nullptr && (owns_early(blocks[i]) != 0) != dropin_served(size))
                ok = false;
            dropin_fill(blocks[i], size);
        }
        for (size_t i = 0; i < CHURN_BLOCKS; i++) {
            ok = ok && dropin_check(blocks[i], churn_size(i));
            free(blocks[i]);
        }
    }
    return ok;
}

bool owned_now(void *p)
{
    return owns_early != nullptr && owns_early(p) != 0;
}

void after_main_verdict();

// Priority 101 runs before C++ dynamic initialisation, so the handler it
// registers is the last to run at exit.
__attribute__((constructor(101))) void before_main()
{
    owns_early = reinterpret_cast<int (*)(const void *)>(dlsym(RTLD_DEFAULT, "obm_owns"));
    void *p = malloc(40);
    ctor_owned = owned_now(p);
    free(p);
    ctor_ran = churn(20);
    atexit(after_main_verdict);
}

// C++ dynamic initialisation, also before main.
std::vector<std::string> early_strings = [] {
    std::vector<std::string> v;
    for (int i = 0; i < 200; i++)
        v.push_back(std::string(static_cast<size_t>(i), static_cast<char>('a' + i % 26)));
    return v;
}();

// And a block above OBM_MEDIUM_MAX: the backing allocator's.
std::vector<uint64_t> early_big = [] {
    std::vector<uint64_t> v(8192); // 64 KiB
    for (size_t i = 0; i < v.size(); i++)
        v[i] = i * 0x9e3779b97f4a7c15ull;
    return v;
}();

// A static object destroyed after main: allocates in its destructor.
struct StaticAllocator {
    ~StaticAllocator()
    {
        std::string s(1000, 'z');
        std::vector<std::string> v(50, s);
        static_destroyed = churn(5) && v.back() == s;
    }
} static_allocator;

// A thread_local object whose destructor allocates.
struct Holder {
    std::vector<std::string> strings;
    bool *destroyed_flag = nullptr;
    Holder()
    {
        for (int i = 0; i < 30; i++)
            strings.push_back(std::string(static_cast<size_t>(i * 20), 'h'));
    }
    ~Holder()
    {
        bool ok = strings.size() == 30;
        for (int i = 0; i < 30 && ok; i++)
            ok = strings[i] == std::string(static_cast<size_t>(i * 20), 'h');
        std::vector<std::string> more(100, std::string(100, 'm'));
        ok = ok && churn(3) && more[99].size() == 100;
        if (!ok)
            failures++;
        tls_destructor_calls++;
        if (destroyed_flag != nullptr)
            *destroyed_flag = ok;
    }
};

thread_local Holder holder;

pthread_key_t key;

struct KeyValue {
    int generation;
    size_t size;
    unsigned char *bytes;
};

KeyValue *new_key_value(int generation)
{
    auto *kv = static_cast<KeyValue *>(malloc(sizeof(KeyValue)));
    kv->generation = generation;
    kv->size = 100 + 300 * static_cast<size_t>(generation);
    kv->bytes = static_cast<unsigned char *>(malloc(kv->size));
    dropin_fill(kv->bytes, kv->size);
    return kv;
}

// Runs after the thread's function returned (and after its thread_local
// destructors); sets the key once more, so glibc calls it again.
void key_destructor(void *value)
{
    auto *kv = static_cast<KeyValue *>(value);
    key_destructor_calls++;
    if (!dropin_check(kv->bytes, kv->size) || !churn(2))
        failures++;
    int generation = kv->generation;
    free(kv->bytes);
    free(kv);
    if (generation == 0)
        pthread_setspecific(key, new_key_value(1));
}

void *key_thread(void *arg)
{
    pthread_setspecific(key, new_key_value(0));
    if (holder.strings.size() != 30) // constructs this thread's holder
        failures++;
    if (arg != nullptr)
        pthread_exit(nullptr); // destructors run on pthread_exit as on return
    return nullptr;
}

void test_constructor_alloc(void **)
{
    assert_true(ctor_ran);
    assert_true(ctor_owned);
}

void test_dynamic_init_alloc(void **)
{
    assert_int_equal(early_strings.size(), 200);
    for (size_t i = 0; i < early_strings.size(); i++)
        assert_true(early_strings[i] == std::string(i, static_cast<char>('a' + i % 26)));
    assert_true(dropin_owns(early_strings.data()));      // 256 * 32 B: a medium pool
    assert_true(dropin_owns(early_strings[100].data())); // 101 B: a small pool
    for (size_t i = 0; i < early_big.size(); i++)
        assert_true(early_big[i] == i * 0x9e3779b97f4a7c15ull);
    assert_false(dropin_owns(early_big.data())); // 64 KiB: the backing allocator
}

void test_key_destructor_alloc(void **)
{
    const int nthreads = 8, rounds = 10;
    for (int r = 0; r < rounds; r++) {
        pthread_t tid[nthreads];
        for (int t = 0; t < nthreads; t++)
            assert_int_equal(pthread_create(&tid[t], nullptr, key_thread, t % 2 ? &key : nullptr),
                             0);
        for (int t = 0; t < nthreads; t++)
            pthread_join(tid[t], nullptr);
    }
    assert_int_equal(key_destructor_calls.load(), 2 * nthreads * rounds);
    assert_int_equal(failures.load(), 0);
}

void test_thread_local_destructor_alloc(void **)
{
    int before = tls_destructor_calls.load();
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; t++)
        threads.emplace_back([] {
            std::string s(300, 's');
            if (holder.strings.size() != 30 || s.size() != 300)
                failures++;
        });
    for (auto &th : threads)
        th.join();
    assert_int_equal(tls_destructor_calls.load() - before, 16);
    assert_int_equal(failures.load(), 0);
}

void atexit_handler()
{
    atexit_ran = churn(5);
}

void test_exit_path(void **)
{
    // The main thread's holder is destroyed in exit(); the child exits the
    // same way the main process will, through after_main_verdict.
    holder.destroyed_flag = &main_tls_destroyed;
    atexit(atexit_handler);
    fflush(nullptr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        exit(0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

void after_main_verdict()
{
    bool mine = churn(5);
    if (!mine || !main_tls_destroyed || !static_destroyed || !atexit_ran || failures.load()) {
        fprintf(stderr,
                "after main: own churn %d, main thread_local %d, static destructor %d, "
                "atexit %d, failures %d\n",
                mine, main_tls_destroyed, static_destroyed, atexit_ran, failures.load());
        fflush(nullptr);
        _exit(1);
    }
}

// An ELF destructor runs after the atexit handlers: it checks itself.
__attribute__((destructor)) void elf_destructor()
{
    void *p = malloc(72);
    bool ok = owned_now(p) && churn(3);
    free(p);
    if (!ok) {
        fprintf(stderr, "after main: ELF destructor could not allocate\n");
        fflush(nullptr);
        _exit(1);
    }
}

} // namespace

int main()
{
    dropin_require_obm(60);
    if (pthread_key_create(&key, key_destructor) != 0) {
        printf("Bail out! pthread_key_create failed\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constructor_alloc),
        cmocka_unit_test(test_dynamic_init_alloc),
        cmocka_unit_test(test_key_destructor_alloc),
        cmocka_unit_test(test_thread_local_destructor_alloc),
        cmocka_unit_test(test_exit_path),
    };
    return DROPIN_RUN_TAP(tests);
}
