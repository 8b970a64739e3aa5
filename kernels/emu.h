// emu.h: compile unchanged CUDA C with g++ (C++17) and run it on the CPU.
//
// Execution model (see runtime/emu_build.py for the Python side):
//   * A launch spreads its blocks over OS worker threads (the launching thread plus
//     workers - 1 pthreads). A worker runs one block at a time, to completion.
//   * The threads of a block are fibers (own stacks, user-space context switches) on
//     that worker's OS thread. They run cooperatively: a fiber runs until it reaches a
//     barrier or a warp-synchronous op, then hands over to the next runnable fiber.
//     When every fiber has had its turn the scheduler releases whoever can proceed: a
//     __syncthreads() once *every* live thread of the block waits there (a real
//     barrier), a warp op once every live lane named in the mask waits in a warp op.
//     Nothing runnable but threads still waiting is a deadlock, reported as an error
//     instead of hanging.
//   * __shared__ is thread_local: all fibers of a block share their worker's copy, and
//     blocks on other workers have their own. Values left by a previous block on the same
//     worker stay visible (CUDA leaves shared memory undefined at block start).
//   * A translation unit that contains no synchronisation primitive (emu_build decides)
//     is launched in "direct" mode: each thread is a plain function call, no fibers.
//   * Failures (assert, __trap, deadlock, a divergent barrier, a bad launch config) end
//     the launch and come back as an error code + message from the launch function.
//     Memory errors (a wild pointer) still crash the process: use asan=True to find them.
//
// Schedules: Config::schedule picks the order in which a block's runnable threads run
// between synchronisation points (0 forward, 1 reverse, 2 a shuffle seeded by
// Config::seed and the block index). A correct kernel gives the same result in every order.
//
// Checking mode (-DTHETA_EMU_CHECK, see emu_check.h): shared memory declared through the
// prelude's THETA_SHARED macros is shadowed per element (races within a barrier interval,
// reads of elements the block never wrote, the 48 KB static limit); barriers must be reached
// at one call site by every thread; a warp op's lanes must agree on op, call site and mask;
// global scratch declared with THETA_DEVICE_ARRAY must be published with __threadfence()
// before another block reads it. Failures name the threads and the kernel source lines
// (code addresses that runtime/emu_build.py symbolizes with addr2line).
//
// Divergent barriers: a __syncthreads() that some threads of the block never reach
// because they returned is undefined behaviour in CUDA and a common bug. By default
// emu reports it ("divergent __syncthreads"); Config::exited_threads_arrive makes
// exited threads count as arrived instead (what most GPUs happen to do).
#pragma once

// Only light C-level headers: they are parsed again for every module, and g++ time is
// the cost of emu (the runtime below uses pthreads and fixed buffers, not <thread>,
// <mutex>, <string> or <vector>).
#include <cassert>
#include <cfloat>
#include <climits>
#include <cmath>
#include <csetjmp>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <math.h>  // libstdc++'s math.h puts the float overloads (sqrt(float) ...) in ::
#include <new>

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define THETA_EMU_ASAN 1
#endif

#define THETA_EMU 1
#define THETA_EMU_EXPORT extern "C" __attribute__((visibility("default")))

// ---------------------------------------------------------------------------------------
// Vector types, dim3 and the built-in index variables (global namespace, as in CUDA).
// Alignments follow CUDA's vector_types.h so reinterpret_cast'ed float4 loads line up.
// ---------------------------------------------------------------------------------------

#define THETA_EMU_VECTOR_TYPES(T, N, A2, A4)                                               \
  struct N##1 { T x; };                                                                      \
  struct __attribute__((aligned(A2))) N##2 { T x, y; };                                      \
  struct N##3 { T x, y, z; };                                                                \
  struct __attribute__((aligned(A4))) N##4 { T x, y, z, w; };                                \
  inline N##1 make_##N##1(T x) { return N##1{x}; }                                           \
  inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }                                   \
  inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }                           \
  inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }

THETA_EMU_VECTOR_TYPES(signed char, char, 2, 4)
THETA_EMU_VECTOR_TYPES(unsigned char, uchar, 2, 4)
THETA_EMU_VECTOR_TYPES(short, short, 4, 8)
THETA_EMU_VECTOR_TYPES(unsigned short, ushort, 4, 8)
THETA_EMU_VECTOR_TYPES(int, int, 8, 16)
THETA_EMU_VECTOR_TYPES(unsigned int, uint, 8, 16)
THETA_EMU_VECTOR_TYPES(long, long, 16, 16)
THETA_EMU_VECTOR_TYPES(unsigned long, ulong, 16, 16)
THETA_EMU_VECTOR_TYPES(long long, longlong, 16, 16)
THETA_EMU_VECTOR_TYPES(unsigned long long, ulonglong, 16, 16)
THETA_EMU_VECTOR_TYPES(float, float, 8, 16)
THETA_EMU_VECTOR_TYPES(double, double, 16, 16)
#undef THETA_EMU_VECTOR_TYPES

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

// Set by the scheduler for the fiber (or direct call) that runs next on this OS thread.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
constexpr int warpSize = 32;

#ifndef CUDART_INF_F
#define CUDART_INF_F (__builtin_huge_valf())
#define CUDART_NAN_F (__builtin_nanf(""))
#define CUDART_INF (__builtin_huge_val())
#define CUDART_NAN (__builtin_nan(""))
#define CUDART_PI_F 3.141592654f
#define CUDART_PI 3.1415926535897931e+0
#endif

// ---------------------------------------------------------------------------------------
// The runtime: stacks, the per-block fiber scheduler, the launch.
// ---------------------------------------------------------------------------------------
namespace theta_emu {

constexpr unsigned kWarpSize = 32;
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxWorkers = 256;
constexpr size_t kErrorBytes = 1024;
// Bytes of `extern __shared__` storage each worker has (sm_90's opt-in maximum).
constexpr size_t kMaxDynamicShared = 227 * 1024;

struct Config {
  unsigned workers = 0;            // 0: the CPUs this process may run on
  size_t stack_bytes = 64 * 1024;  // per fiber, plus one guard page
  bool exited_threads_arrive = false;
  unsigned schedule = 0;           // thread order between sync points: 0 forward, 1 reverse, 2 shuffled
  unsigned seed = 0;               // of the shuffle
};
#ifdef THETA_EMU_CHECK
constexpr bool kCheck = true;
#else
constexpr bool kCheck = false;
#endif
// Static shared memory a block may declare (CUDA's limit without the dynamic opt-in).
constexpr size_t kMaxStaticShared = 48 * 1024;

// "kernel.cu+0x1f3a": a code address as an offset in its shared object, which
// runtime/emu_build.py turns into a kernel source line (addr2line).
struct Site {
  char s[48];
};
inline Site site_of(const void* address) {
  Site out;
  Dl_info info;
  if (address && dladdr(address, &info) && info.dli_fbase) {
    // the return address is the instruction after the call: step back into the call
    snprintf(out.s, sizeof out.s, "[[site:0x%lx]]",
             static_cast<unsigned long>(static_cast<const char*>(address) - static_cast<const char*>(info.dli_fbase) - 1));
  } else {
    snprintf(out.s, sizeof out.s, "[[site:?]]");
  }
  return out;
}

// One access to a shared element: the thread, the barrier interval and the warp's sync count
// at the time, and the code address. Two accesses by different threads are ordered only by a
// barrier between them, or by a warp-synchronous op between them when both are in one warp.
struct SharedAccess {
  int32_t tid;
  uint32_t bar, warp;
  const void* site;
};
// The checker's state of one shared element: valid for the block whose serial it holds
// (zero-initialized storage is "never written by any block").
struct SharedShadow {
  uint32_t serial;
  SharedAccess w, r1, r2;
};
// The checker's state of one element of global scratch (THETA_DEVICE_ARRAY): who wrote it in
// which launch, and whether that thread has executed __threadfence() since.
struct GlobalShadow {
  uint64_t launch;
  int64_t block;
  int32_t tid;
  int32_t visible;
  const void* site;
};
constexpr int kMaxPending = 256;  // unfenced global scratch writes the checker tracks per thread
// A sync op's call site as the kernel source names it (the line of the call, taken as a
// default argument): unrolled or duplicated code keeps one key per source line. (Two sync ops
// on one line are one site to the checker; g++ < 13 has no __builtin_COLUMN.)
#define THETA_EMU_HERE (static_cast<unsigned>(__builtin_LINE()))
// Per launching thread, so concurrent launches from several Python threads don't clash.
inline thread_local Config t_config;

// A kernel call bound to its arguments: call(ctx) runs the kernel for the current thread.
struct Kernel {
  void (*call)(const void*);
  const void* ctx;
  template <class F>
  static Kernel of(const F& f) {
    return Kernel{[](const void* p) { (*static_cast<const F*>(p))(); }, &f};
  }
};

// A launcher's local copy of a kernel parameter: its type without top-level const.
template <class T>
struct ArgType {
  using type = T;
};
template <class T>
struct ArgType<const T> {
  using type = T;
};

template <class T>
inline T min_of(T a, T b) {
  return a < b ? a : b;
}

// printf-appends to a NUL-terminated buffer of `size` bytes.
inline void append(char* buf, size_t size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
inline void append(char* buf, size_t size, const char* fmt, ...) {
  size_t used = strnlen(buf, size);
  if (used + 1 >= size) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + used, size - used, fmt, ap);
  va_end(ap);
}

class Mutex {
 public:
  void lock() { pthread_mutex_lock(&m_); }
  void unlock() { pthread_mutex_unlock(&m_); }

 private:
  pthread_mutex_t m_ = PTHREAD_MUTEX_INITIALIZER;
};
struct Lock {
  explicit Lock(Mutex& m) : m_(m) { m_.lock(); }
  ~Lock() { m_.unlock(); }
  Mutex& m_;
};

// Fiber stacks are mmap'ed once (with a PROT_NONE guard page below, so an overflow
// faults instead of corrupting a neighbour) and recycled across blocks and launches.
class StackPool {
 public:
  static StackPool& instance() {
    static StackPool* pool = new StackPool;  // leaked on purpose: no exit-time destructor
    return *pool;
  }
  void* acquire(size_t bytes) {
    {
      Lock lock(mu_);
      if (bytes == bytes_ && count_ > 0) return free_[--count_];
    }
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* base = mmap(nullptr, bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) return nullptr;
    mprotect(base, page, PROT_NONE);
    return static_cast<char*>(base) + page;
  }
  // Unmaps every pooled stack. Every loaded module has its own pool, and a process that loads
  // thousands of modules (a test suite) would run out of memory mappings (vm.max_map_count) if
  // each kept its stacks: the Python side drains a module's pool when another module launches
  // (theta_emu_drain), so at most one module keeps warm stacks between launches.
  void drain() {
    Lock lock(mu_);
    for (size_t i = 0; i < count_; ++i) unmap(free_[i], bytes_);
    count_ = 0;
  }
  void release(void* stack, size_t bytes) {
    Lock lock(mu_);
    if (bytes != bytes_) {  // the stack size changed: drop the old pool
      for (size_t i = 0; i < count_; ++i) unmap(free_[i], bytes_);
      count_ = 0;
      bytes_ = bytes;
    }
    if (count_ == capacity_) {
      size_t grown = capacity_ ? 2 * capacity_ : 1024;
      void** p = static_cast<void**>(realloc(free_, grown * sizeof(void*)));
      if (!p) return unmap(stack, bytes);
      free_ = p;
      capacity_ = grown;
    }
    free_[count_++] = stack;
  }

 private:
  static void unmap(void* stack, size_t bytes) {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    munmap(static_cast<char*>(stack) - page, bytes + page);
  }
  Mutex mu_;
  void** free_ = nullptr;
  size_t count_ = 0, capacity_ = 0, bytes_ = 0;
};

// ---- Context switching. On x86-64 a fiber switch saves the callee-saved registers on
// the old stack and pops them from the new one (no syscall: glibc's swapcontext also
// saves the signal mask, a syscall per switch, which made launches ~12x slower).
// Elsewhere, or with -DTHETA_EMU_UCONTEXT, ucontext does the same more slowly.
#if defined(__x86_64__) && !defined(THETA_EMU_UCONTEXT)
struct Context {
  void* sp = nullptr;
};
// fiber_switch(&from.sp, to.sp): stack layout (low to high) x87 cw, mxcsr, r15..rbp, ret.
// noipa: GCC must not infer from the asm body which registers the call clobbers (the
// fiber we come back from may have used them all); it has to assume the full ABI.
#if defined(__clang__)
#define THETA_EMU_NOIPA
#else
#define THETA_EMU_NOIPA noipa,
#endif
__attribute__((THETA_EMU_NOIPA naked, noinline)) static void fiber_switch(void** /*save_sp*/, void* /*load_sp*/) {
  asm volatile(
      "pushq %rbp\n\tpushq %rbx\n\tpushq %r12\n\tpushq %r13\n\tpushq %r14\n\tpushq %r15\n\t"
      "subq $16, %rsp\n\tstmxcsr 8(%rsp)\n\tfnstcw (%rsp)\n\t"
      "movq %rsp, (%rdi)\n\tmovq %rsi, %rsp\n\t"
      "ldmxcsr 8(%rsp)\n\tfldcw (%rsp)\n\taddq $16, %rsp\n\t"
      "popq %r15\n\tpopq %r14\n\tpopq %r13\n\tpopq %r12\n\tpopq %rbx\n\tpopq %rbp\n\t"
      "ret\n\t");
}
// A fresh context "returns" into entry() with an aligned stack and the caller's FP modes.
inline void context_init(Context& c, void* stack, size_t size, void (*entry)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0;  // entry's return address: it never returns
  *--sp = reinterpret_cast<uint64_t>(entry);
  for (int i = 0; i < 6; ++i) *--sp = 0;  // rbp rbx r12 r13 r14 r15
  sp -= 2;
  uint32_t mxcsr;
  uint16_t fcw;
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(fcw));
  std::memcpy(sp, &fcw, sizeof fcw);
  std::memcpy(reinterpret_cast<char*>(sp) + 8, &mxcsr, sizeof mxcsr);
  c.sp = sp;
}
inline void context_switch(Context& from, Context& to) { fiber_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
inline void context_init(Context& c, void* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
inline void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// ---- ASan fiber annotations (no-ops without -fsanitize=address) ----
inline void asan_start_switch(void** fake_stack_save, const void* bottom, size_t size) {
#ifdef THETA_EMU_ASAN
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
  (void)fake_stack_save, (void)bottom, (void)size;
#endif
}
inline void asan_finish_switch(void* fake_stack_save) {
#ifdef THETA_EMU_ASAN
  const void* bottom;
  size_t size;
  __sanitizer_finish_switch_fiber(fake_stack_save, &bottom, &size);
#else
  (void)fake_stack_save;
#endif
}

enum class Wait : uint8_t { Runnable, Barrier, Warp, Done };

struct Fiber {
  Context ctx;
  void* stack = nullptr;
  Wait wait = Wait::Done;
  unsigned mask = 0;  // the mask of the warp op it waits in
  uint3 tid{};
  void* asan_fake_stack = nullptr;
};

// Values exchanged by one warp op. `in` is written by each lane before it waits; at
// release the scheduler copies `in` to `out` for the released lanes, which read `out`
// right after they resume, before any of them can write `in` again.
struct WarpSlots {
  uint64_t in[kWarpSize];
  uint64_t out[kWarpSize];
  unsigned waiting = 0;   // lanes waiting in a warp op
  unsigned live = 0;      // lanes that exist and have not exited
  unsigned released = 0;  // lanes released by the last release of this warp
};

struct ThreadName {  // "thread (x,y,z) of block (x,y,z)"
  char s[96];
};

struct LaunchState;

// Runs blocks, one at a time, on the calling OS thread.
class Block {
 public:
  Block(const LaunchState& launch, bool fibers);
  ~Block();
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  // Runs every thread of block `idx`; on failure returns false and sets error().
  bool run(uint3 idx);
  const char* error() const { return error_; }

  // --- called from kernel code through the CUDA intrinsics below ---
  bool fibers() const { return fibers_mode_; }
  unsigned lane() const { return static_cast<unsigned>(cur_) % kWarpSize; }
  int barrier(int predicate, unsigned key);  // returns the number of threads with predicate != 0
  const WarpSlots& warp_sync(unsigned mask, uint64_t value, const char* op, const void* site, unsigned key);
  unsigned live_lanes() const;
  [[noreturn]] void fail(const char* message);
  // checking mode (emu_check.h)
  void shared_read(SharedShadow& s, const char* name, size_t index, const void* site);
  void shared_write(SharedShadow& s, const char* name, size_t index, const void* site);
  void shared_declared(uint32_t* seen, size_t bytes, const char* name);
  void global_read(GlobalShadow& g, const char* name, size_t index, const void* site);
  void global_write(GlobalShadow& g, const void* site);
  void fence();
  bool check_warp_release(int w, unsigned go);  // false (error_ set) when the released lanes disagree
  bool check_barrier_release();                 // false when threads wait at different barriers

 private:
  static void fiber_main();
  [[noreturn]] void exit_current();
  bool run_direct();
  bool run_fibers();
  void start_fibers();
  bool release();
  int next_runnable(int after) const;
  void yield(Wait w);
  void switch_to(int from, int to, bool from_dying);
  ThreadName thread_name(int i) const;
  void report_deadlock();
  void order_threads();
  bool conflict(const SharedAccess& a) const;
  [[noreturn]] void race(const char* kind, const char* name, size_t index, const SharedAccess& other,
                         const void* site);

  const LaunchState& launch_;
  bool fibers_mode_;
  int n_ = 0;       // threads per block
  int cur_ = 0;     // linear index of the running thread
  int done_ = 0;    // threads that exited
  int at_barrier_ = 0;
  int bar_count_ = 0, bar_result_ = 0;  // predicate counts of __syncthreads_count & co
  uint3 block_idx_{};
  Fiber* fib_ = nullptr;
  WarpSlots* warps_ = nullptr;
  int nwarps_ = 0;
  Context sched_ctx_;
  void* sched_fake_stack_ = nullptr;
  const void* sched_stack_ = nullptr;  // the worker's own stack, for ASan's fiber switches
  size_t sched_stack_size_ = 0;
  size_t stack_bytes_ = 0;
  sigjmp_buf direct_exit_;  // direct mode: fail() jumps back here
  char error_[kErrorBytes] = {};
  int* order_ = nullptr;  // order_[k]: the k-th thread to run between sync points
  int* pos_ = nullptr;    // pos_[thread]: its place in order_
  // checking mode
  uint32_t serial_ = 0;     // this block run, among all on this OS thread
  uint32_t bar_epoch_ = 0;  // barriers released so far in this block
  uint32_t* warp_epoch_ = nullptr;
  const void** site_ = nullptr;  // per thread: the code address of the sync op it waits in
  unsigned* key_ = nullptr;      // per thread: the source key (THETA_EMU_HERE) of that op
  const char** op_ = nullptr;    // per thread: which warp op
  unsigned* mask_arg_ = nullptr; // per thread: the mask it passed
  size_t shared_bytes_ = 0;      // checked static shared memory this block declared
  GlobalShadow** pending_ = nullptr;  // per thread: kMaxPending unfenced scratch writes
  int* npending_ = nullptr;
};

inline thread_local Block* t_block = nullptr;

struct LaunchState {
  dim3 grid, block;
  Kernel kernel;
  Config config;
  bool fibers;
  uint64_t nblocks;
  uint64_t id = 0;    // this launch, among all of the process (checking mode)
  uint64_t next = 0;  // the next block to run (atomic)
  int failed = 0;     // (atomic)
  Mutex mu;
  char error[2 * kErrorBytes] = {};  // the first failure
  void record(const char* e) {
    Lock lock(mu);
    if (!error[0]) snprintf(error, sizeof error, "%s", e);
    __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
  }
};

inline Block::Block(const LaunchState& launch, bool fibers) : launch_(launch), fibers_mode_(fibers) {
  n_ = static_cast<int>(launch.block.x * launch.block.y * launch.block.z);
  order_ = new (std::nothrow) int[n_];
  pos_ = new (std::nothrow) int[n_];
  if (kCheck) {
    pending_ = new (std::nothrow) GlobalShadow*[static_cast<size_t>(n_) * kMaxPending];
    npending_ = new (std::nothrow) int[n_]();
  }
  if (!order_ || !pos_ || (kCheck && (!pending_ || !npending_))) {
    snprintf(error_, sizeof error_, "out of memory for %d threads", n_);
    return;
  }
  if (!fibers_mode_) return;
  stack_bytes_ = launch.config.stack_bytes;
  nwarps_ = (n_ + static_cast<int>(kWarpSize) - 1) / static_cast<int>(kWarpSize);
  fib_ = new (std::nothrow) Fiber[n_]();
  warps_ = new (std::nothrow) WarpSlots[nwarps_]();
  warp_epoch_ = new (std::nothrow) uint32_t[nwarps_]();
  site_ = new (std::nothrow) const void*[n_]();
  key_ = new (std::nothrow) unsigned[n_]();
  op_ = new (std::nothrow) const char*[n_]();
  mask_arg_ = new (std::nothrow) unsigned[n_]();
  if (!fib_ || !warps_ || !warp_epoch_ || !site_ || !key_ || !op_ || !mask_arg_) {
    snprintf(error_, sizeof error_, "out of memory for %d fibers", n_);
    return;
  }
  for (int i = 0; i < n_; ++i) {
    fib_[i].stack = StackPool::instance().acquire(stack_bytes_);
    if (!fib_[i].stack) {
      snprintf(error_, sizeof error_, "cannot allocate %d fiber stacks of %zu bytes", n_, stack_bytes_);
      return;
    }
  }
#ifdef THETA_EMU_ASAN
  // Pooled stacks may hold poisoned redzones of frames abandoned by a failed launch.
  for (int i = 0; i < n_; ++i) __asan_unpoison_memory_region(fib_[i].stack, stack_bytes_);
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr;
    pthread_attr_getstack(&attr, &addr, &sched_stack_size_);
    sched_stack_ = addr;
    pthread_attr_destroy(&attr);
  }
#endif
}

inline Block::~Block() {
  if (fib_)
    for (int i = 0; i < n_; ++i)
      if (fib_[i].stack) StackPool::instance().release(fib_[i].stack, stack_bytes_);
  delete[] fib_;
  delete[] warps_;
  delete[] order_;
  delete[] pos_;
  delete[] warp_epoch_;
  delete[] site_;
  delete[] key_;
  delete[] op_;
  delete[] mask_arg_;
  delete[] pending_;
  delete[] npending_;
}

// The thread order of this block run (Config::schedule), and a fresh checker state.
inline void Block::order_threads() {
  for (int i = 0; i < n_; ++i) order_[i] = launch_.config.schedule == 1 ? n_ - 1 - i : i;
  if (launch_.config.schedule == 2) {  // Fisher-Yates with a xorshift seeded per block
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t(launch_.config.seed) << 32) ^
                 (uint64_t(block_idx_.x) + 65536ull * (block_idx_.y + 65536ull * block_idx_.z));
    for (int i = n_ - 1; i > 0; --i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      int j = static_cast<int>(x % static_cast<uint64_t>(i + 1));
      int t = order_[i];
      order_[i] = order_[j], order_[j] = t;
    }
  }
  for (int k = 0; k < n_; ++k) pos_[order_[k]] = k;
  static thread_local uint32_t serials = 0;
  serial_ = ++serials;
  bar_epoch_ = 0;
  shared_bytes_ = 0;
  if (warp_epoch_)
    for (int w = 0; w < nwarps_; ++w) warp_epoch_[w] = 0;
  if (npending_)
    for (int i = 0; i < n_; ++i) npending_[i] = 0;
}

inline ThreadName Block::thread_name(int i) const {
  unsigned bx = launch_.block.x, by = launch_.block.y;
  unsigned u = static_cast<unsigned>(i);
  ThreadName name;
  snprintf(name.s, sizeof name.s, "thread (%u,%u,%u) of block (%u,%u,%u)", u % bx, (u / bx) % by, u / (bx * by),
           block_idx_.x, block_idx_.y, block_idx_.z);
  return name;
}

inline bool Block::run(uint3 idx) {
  block_idx_ = idx;
  blockIdx = idx;
  error_[0] = '\0';
  t_block = this;
  order_threads();
  bool ok = fibers_mode_ ? run_fibers() : run_direct();
  t_block = nullptr;
  return ok;
}

// A failure in direct mode longjmps back here; kernel frames hold no destructors to skip.
inline bool Block::run_direct() {
  const unsigned bx = launch_.block.x, by = launch_.block.y;
  volatile int i = 0;
  if (sigsetjmp(direct_exit_, 0)) return false;
  for (; i < n_; i = i + 1) {
    cur_ = order_[i];
    unsigned u = static_cast<unsigned>(cur_);
    threadIdx = uint3{u % bx, (u / bx) % by, u / (bx * by)};
    launch_.kernel.call(launch_.kernel.ctx);
  }
  return true;
}

inline void Block::fiber_main() {
  Block* b = t_block;
  asan_finish_switch(nullptr);
  b->launch_.kernel.call(b->launch_.kernel.ctx);
  b->exit_current();
}

inline void Block::start_fibers() {
  const unsigned bx = launch_.block.x, by = launch_.block.y;
  for (int i = 0; i < n_; ++i) {
    Fiber& f = fib_[i];
#ifdef THETA_EMU_ASAN
    // A finished fiber never returns from fiber_main: the redzones of its exit path
    // (fiber_main -> exit_current -> switch_to, at the top of the stack) stay poisoned.
    size_t top = min_of<size_t>(stack_bytes_, 16 * 1024);
    __asan_unpoison_memory_region(static_cast<char*>(f.stack) + stack_bytes_ - top, top);
#endif
    context_init(f.ctx, f.stack, stack_bytes_, &Block::fiber_main);
    f.wait = Wait::Runnable;
    f.mask = 0;
    unsigned u = static_cast<unsigned>(i);
    f.tid = uint3{u % bx, (u / bx) % by, u / (bx * by)};
  }
  for (int w = 0; w < nwarps_; ++w) {
    unsigned lanes = min_of<unsigned>(kWarpSize, static_cast<unsigned>(n_ - w * static_cast<int>(kWarpSize)));
    warps_[w].live = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
    warps_[w].waiting = 0;
    warps_[w].released = 0;
  }
  done_ = at_barrier_ = bar_count_ = bar_result_ = 0;
}

// The next runnable thread after thread `after` (-1: from the start) in this run's order.
inline int Block::next_runnable(int after) const {
  for (int k = after < 0 ? 0 : pos_[after] + 1; k < n_; ++k)
    if (fib_[order_[k]].wait == Wait::Runnable) return order_[k];
  return -1;
}

// Switches from fiber `from` (-1: the scheduler) to fiber `to` (-1: the scheduler).
inline void Block::switch_to(int from, int to, bool from_dying) {
  Context& from_ctx = from < 0 ? sched_ctx_ : fib_[from].ctx;
  void** fake = from_dying ? nullptr : (from < 0 ? &sched_fake_stack_ : &fib_[from].asan_fake_stack);
  if (to >= 0) {
    cur_ = to;
    threadIdx = fib_[to].tid;
    asan_start_switch(fake, fib_[to].stack, stack_bytes_);
    context_switch(from_ctx, fib_[to].ctx);
  } else {
    asan_start_switch(fake, sched_stack_, sched_stack_size_);
    context_switch(from_ctx, sched_ctx_);
  }
  // Resumed (never reached by a dying fiber).
  asan_finish_switch(from < 0 ? sched_fake_stack_ : fib_[from].asan_fake_stack);
}

inline void Block::yield(Wait w) {
  int me = cur_;
  fib_[me].wait = w;
  switch_to(me, next_runnable(me), false);
}

inline void Block::exit_current() {
  int me = cur_;
  fib_[me].wait = Wait::Done;
  ++done_;
  warps_[me / kWarpSize].live &= ~(1u << (me % kWarpSize));
  switch_to(me, next_runnable(me), true);
  __builtin_unreachable();
}

inline void Block::fail(const char* message) {
  if (!error_[0]) snprintf(error_, sizeof error_, "%s: %s", thread_name(cur_).s, message);
  if (!fibers_mode_) siglongjmp(direct_exit_, 1);
  fib_[cur_].wait = Wait::Done;
  switch_to(cur_, -1, true);  // the scheduler sees error_ and abandons the block
  __builtin_unreachable();
}

inline bool Block::run_fibers() {
  if (error_[0] || !fib_) return false;
  start_fibers();
  for (;;) {
    // One pass: every runnable fiber runs until it waits or exits, handing over to the
    // next runnable one itself; the last one switches back here.
    int first = next_runnable(-1);
    if (first >= 0) switch_to(-1, first, false);
    if (error_[0]) return false;
    if (done_ == n_) return true;
    if (!release()) {
      if (!error_[0]) report_deadlock();
      return false;
    }
  }
}

// Releases the waiters that can proceed; false when nobody can (a deadlock).
inline bool Block::release() {
  bool any = false;
  for (int w = 0; w < nwarps_; ++w) {
    WarpSlots& s = warps_[w];
    if (!s.waiting) continue;
    Fiber* lanes = fib_ + w * kWarpSize;
    // Largest set of waiting lanes whose masks name only waiting (or exited) lanes.
    unsigned go = s.waiting;
    for (bool changed = true; changed;) {
      changed = false;
      for (unsigned l = 0; l < kWarpSize; ++l) {
        if ((go >> l & 1) && (lanes[l].mask & s.live & ~go)) {
          go &= ~(1u << l);
          changed = true;
        }
      }
    }
    if (!go) continue;
#ifdef THETA_EMU_CHECK
    if (!check_warp_release(w, go)) return false;
#endif
    for (unsigned l = 0; l < kWarpSize; ++l) {
      if (go >> l & 1) {
        s.out[l] = s.in[l];
        lanes[l].wait = Wait::Runnable;
      }
    }
    s.released = go;
    s.waiting &= ~go;
    any = true;
  }
  if (at_barrier_ > 0 && at_barrier_ == n_ - done_) {
    if (done_ > 0 && !launch_.config.exited_threads_arrive) {
      int exited = 0, waiting = 0;
      for (int i = n_ - 1; i >= 0; --i) (fib_[i].wait == Wait::Done ? exited : waiting) = i;
      snprintf(error_, sizeof error_,
               "divergent __syncthreads: %d of %d threads exited while %d wait at the barrier "
               "(e.g. %s exited, %s waits)",
               done_, n_, at_barrier_, thread_name(exited).s, thread_name(waiting).s);
      return false;
    }
#ifdef THETA_EMU_CHECK
    if (!check_barrier_release()) return false;
#endif
    for (int i = 0; i < n_; ++i)
      if (fib_[i].wait == Wait::Barrier) fib_[i].wait = Wait::Runnable;
    at_barrier_ = 0;
    bar_result_ = bar_count_;
    bar_count_ = 0;
    any = true;
  }
  return any;
}

inline void Block::report_deadlock() {
  int at_warp = 0, bar_example = -1, warp_example = -1;
  for (int i = 0; i < n_; ++i) {
    if (fib_[i].wait == Wait::Warp && warp_example < 0) warp_example = i;
    if (fib_[i].wait == Wait::Barrier && bar_example < 0) bar_example = i;
    at_warp += fib_[i].wait == Wait::Warp;
  }
  append(error_, sizeof error_, "deadlock: %d threads wait at __syncthreads, %d in warp-synchronous ops, %d exited",
         at_barrier_, at_warp, done_);
  if (warp_example >= 0) {
    const WarpSlots& s = warps_[warp_example / kWarpSize];
    append(error_, sizeof error_, "; %s waits in a warp op with mask 0x%08x but lanes 0x%08x of its warp are elsewhere",
           thread_name(warp_example).s, fib_[warp_example].mask, fib_[warp_example].mask & s.live & ~s.waiting);
  }
  if (bar_example >= 0) append(error_, sizeof error_, "; %s waits at __syncthreads", thread_name(bar_example).s);
}

__attribute__((noinline)) inline int Block::barrier(int predicate, unsigned key) {
  if (!fibers_mode_) fail("__syncthreads called in a kernel launched without fibers");
  site_[cur_] = __builtin_return_address(0);  // the __syncthreads in the kernel's code
  key_[cur_] = key;
  ++at_barrier_;
  bar_count_ += predicate != 0;
  yield(Wait::Barrier);
  return bar_result_;
}

inline const WarpSlots& Block::warp_sync(unsigned mask, uint64_t value, const char* op, const void* site,
                                         unsigned key) {
  if (!fibers_mode_) fail("warp-synchronous op called in a kernel launched without fibers");
  unsigned l = lane();
  WarpSlots& s = warps_[cur_ / kWarpSize];
  s.in[l] = value;
  s.waiting |= 1u << l;
  if (kCheck && !(mask >> l & 1)) {
    char message[160];
    snprintf(message, sizeof message, "%s with mask 0x%08x at %s: the calling lane %u is not in the mask", op, mask,
             site_of(site).s, l);
    fail(message);
  }
  op_[cur_] = op;
  site_[cur_] = site;
  key_[cur_] = key;
  mask_arg_[cur_] = mask;
  fib_[cur_].mask = mask | (1u << l);
  yield(Wait::Warp);
  return s;
}

inline unsigned Block::live_lanes() const {
  if (fibers_mode_) return warps_[cur_ / kWarpSize].live;
  unsigned first = static_cast<unsigned>(cur_) / kWarpSize * kWarpSize;
  unsigned lanes = min_of<unsigned>(kWarpSize, static_cast<unsigned>(n_) - first);
  return lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
}

inline Block& current(const char* what) {
  Block* b = t_block;
  if (!b) {
    fprintf(stderr, "theta emu: %s called outside a kernel launch\n", what);
    abort();
  }
  return *b;
}

[[noreturn]] inline void fail(const char* message) { current("fail").fail(message); }

inline void run_worker(LaunchState* L) {
  gridDim = L->grid;
  blockDim = L->block;
  Block block(*L, L->fibers);
  if (block.error()[0]) {
    L->record(block.error());
    return;
  }
  const uint64_t gx = L->grid.x, gy = L->grid.y;
  while (!__atomic_load_n(&L->failed, __ATOMIC_RELAXED)) {
    uint64_t b = __atomic_fetch_add(&L->next, 1, __ATOMIC_RELAXED);
    if (b >= L->nblocks) break;
    uint3 idx{static_cast<unsigned>(b % gx), static_cast<unsigned>(b / gx % gy), static_cast<unsigned>(b / (gx * gy))};
    if (!block.run(idx)) {
      L->record(block.error());
      break;
    }
  }
}

inline void* worker_main(void* launch) {
  run_worker(static_cast<LaunchState*>(launch));
  return nullptr;
}

// The CPUs this process may run on (respects taskset / cpusets).
inline unsigned available_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

// Writes why (grid, block, shared_bytes) is not a valid launch into `why`; false if so.
inline bool check_config(dim3 grid, dim3 block, size_t shared_bytes, char* why, size_t n) {
  uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (!grid.x || !grid.y || !grid.z || !block.x || !block.y || !block.z)
    snprintf(why, n, "invalid launch: zero-sized grid (%u,%u,%u) or block (%u,%u,%u)", grid.x, grid.y, grid.z, block.x,
             block.y, block.z);
  else if (threads > kMaxThreadsPerBlock || block.z > 64)
    snprintf(why, n, "invalid launch: block (%u,%u,%u) has %llu threads (max %u, z <= 64)", block.x, block.y, block.z,
             static_cast<unsigned long long>(threads), kMaxThreadsPerBlock);
  else if (grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    snprintf(why, n, "invalid launch: grid (%u,%u,%u) exceeds (2^31-1, 65535, 65535)", grid.x, grid.y, grid.z);
  else if (shared_bytes > kMaxDynamicShared)
    snprintf(why, n, "invalid launch: %zu bytes of dynamic shared memory (max %zu)", shared_bytes, kMaxDynamicShared);
  else
    return true;
  return false;
}

inline int report(const char* message, int code, char* errbuf, size_t errlen) {
  if (errbuf && errlen) snprintf(errbuf, errlen, "%s", message);
  return code;
}

// Runs kernel `k` over the grid. Returns 0, or 1 (bad configuration) / 2 (the kernel
// failed) with a message in errbuf.
inline int launch(dim3 grid, dim3 block, size_t shared_bytes, bool fibers, Kernel k, char* errbuf,
                  size_t errlen) noexcept {
  char why[kErrorBytes];
  if (!check_config(grid, block, shared_bytes, why, sizeof why)) return report(why, 1, errbuf, errlen);
  LaunchState L;
  L.grid = grid;
  L.block = block;
  L.kernel = k;
  L.config = t_config;
  L.fibers = fibers;
  L.nblocks = uint64_t(grid.x) * grid.y * grid.z;
  static uint64_t launches = 0;
  L.id = __atomic_add_fetch(&launches, 1, __ATOMIC_RELAXED);
  uint64_t workers = L.config.workers ? L.config.workers : available_cpus();
  workers = min_of<uint64_t>(min_of<uint64_t>(workers, kMaxWorkers), L.nblocks);
  if (kCheck) workers = 1;  // the checker's shadows are not shared between OS threads
  pthread_t threads[kMaxWorkers];
  unsigned started = 0;
  while (started + 1 < workers && pthread_create(&threads[started], nullptr, worker_main, &L) == 0) ++started;
  run_worker(&L);  // the launching thread is a worker too
  for (unsigned i = 0; i < started; ++i) pthread_join(threads[i], nullptr);
  return L.failed ? report(L.error, 2, errbuf, errlen) : 0;
}

}  // namespace theta_emu

// assert() in kernel code: glibc's assert calls __assert_fail; route it to the emu so a
// failed assertion ends the launch with a message instead of aborting the interpreter.
// The rename also covers kernels that include <assert.h> again after this header.
extern "C" [[noreturn]] inline void theta_emu_assert_fail(const char* expr, const char* file, unsigned int line,
                                                          const char* function) noexcept {
  char message[theta_emu::kErrorBytes];
  snprintf(message, sizeof message, "%s:%u: %s: assertion `%s' failed", file, line, function, expr);
  theta_emu::fail(message);
}
#define __assert_fail theta_emu_assert_fail

// ---------------------------------------------------------------------------------------
// Synchronisation and warp-level intrinsics.
// ---------------------------------------------------------------------------------------

inline void __syncthreads(unsigned key = THETA_EMU_HERE) { theta_emu::current("__syncthreads").barrier(0, key); }
inline int __syncthreads_count(int p, unsigned key = THETA_EMU_HERE) {
  return theta_emu::current("__syncthreads_count").barrier(p, key);
}
inline int __syncthreads_and(int p, unsigned key = THETA_EMU_HERE) {
  theta_emu::Block& b = theta_emu::current("__syncthreads_and");
  return b.barrier(!p, key) == 0;
}
inline int __syncthreads_or(int p, unsigned key = THETA_EMU_HERE) {
  return theta_emu::current("__syncthreads_or").barrier(p, key) != 0;
}
#ifdef THETA_EMU_CHECK
inline void __threadfence() {  // publishes this thread's global scratch writes (emu_check.h)
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  theta_emu::current("__threadfence").fence();
}
#else
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
#endif
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] inline void __trap() { theta_emu::fail("__trap() called"); }
[[noreturn]] inline void __brkpt() { theta_emu::fail("__brkpt() called"); }
inline unsigned __activemask() { return theta_emu::current("__activemask").live_lanes(); }
inline unsigned __lanemask_lt() { return (1u << theta_emu::current("__lanemask_lt").lane()) - 1; }
namespace theta_emu {
// noinline: the return address is the call site in the kernel's code (checking mode reports it)
__attribute__((noinline)) inline void syncwarp(unsigned mask, unsigned key) {
  current("__syncwarp").warp_sync(mask, 0, "__syncwarp", __builtin_return_address(0), key);
}
}  // namespace theta_emu
inline void __syncwarp(unsigned mask = 0xffffffffu, unsigned key = THETA_EMU_HERE) { theta_emu::syncwarp(mask, key); }

namespace theta_emu {
enum class Shfl { Idx, Up, Down, Xor };

// Source lane per PTX shfl.sync semantics (width segments; out-of-segment reads own value).
inline unsigned shfl_source(unsigned lane, Shfl mode, int b, int width) {
  unsigned seg = (kWarpSize - static_cast<unsigned>(width)) & 31u;  // segment mask bits
  unsigned lo = lane & seg, hi = lo | (31u & ~seg);
  unsigned bv = static_cast<unsigned>(b) & 31u;
  int j = static_cast<int>(lane);
  bool ok = false;
  switch (mode) {
    case Shfl::Idx: j = static_cast<int>(lo | (bv & ~seg)); ok = true; break;
    case Shfl::Up: j = static_cast<int>(lane) - static_cast<int>(bv); ok = j >= static_cast<int>(lo); break;
    case Shfl::Down: j = static_cast<int>(lane + bv); ok = j <= static_cast<int>(hi); break;
    case Shfl::Xor: j = static_cast<int>(lane ^ bv); ok = j <= static_cast<int>(hi); break;
  }
  return ok ? static_cast<unsigned>(j) : lane;
}

template <class T>
__attribute__((noinline)) inline T shfl(const char* what, unsigned mask, T var, Shfl mode, int b, int width,
                                        unsigned key) {
  static_assert(sizeof(T) <= 8 && __is_trivially_copyable(T), "shuffled types are at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  Block& blk = current(what);
  unsigned lane = blk.lane();
  const WarpSlots& s = blk.warp_sync(mask, bits, what, __builtin_return_address(0), key);
  uint64_t got = s.out[shfl_source(lane, mode, b, width)];
  T r;
  std::memcpy(&r, &got, sizeof(T));
  return r;
}

// Runs a warp op and returns the lanes of `mask` that took part, with their values in s.out.
__attribute__((noinline)) inline unsigned vote(const char* what, unsigned mask, uint64_t value,
                                               const WarpSlots** slots, unsigned key) {
  const WarpSlots& s = current(what).warp_sync(mask, value, what, __builtin_return_address(0), key);
  *slots = &s;
  return s.released & mask;
}
}  // namespace theta_emu

template <class T>
inline T __shfl_sync(unsigned mask, T var, int src, int width = warpSize, unsigned key = THETA_EMU_HERE) {
  return theta_emu::shfl("__shfl_sync", mask, var, theta_emu::Shfl::Idx, src, width, key);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, unsigned key = THETA_EMU_HERE) {
  return theta_emu::shfl("__shfl_up_sync", mask, var, theta_emu::Shfl::Up, static_cast<int>(delta), width, key);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, unsigned key = THETA_EMU_HERE) {
  return theta_emu::shfl("__shfl_down_sync", mask, var, theta_emu::Shfl::Down, static_cast<int>(delta), width, key);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize, unsigned key = THETA_EMU_HERE) {
  return theta_emu::shfl("__shfl_xor_sync", mask, var, theta_emu::Shfl::Xor, lane_mask, width, key);
}

inline unsigned __ballot_sync(unsigned mask, int pred, unsigned key = THETA_EMU_HERE) {
  const theta_emu::WarpSlots* s;
  unsigned lanes = theta_emu::vote("__ballot_sync", mask, pred != 0, &s, key), r = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((lanes >> l & 1) && s->out[l]) r |= 1u << l;
  return r;
}
inline int __any_sync(unsigned mask, int pred, unsigned key = THETA_EMU_HERE) {
  return __ballot_sync(mask, pred, key) != 0;
}
inline int __all_sync(unsigned mask, int pred, unsigned key = THETA_EMU_HERE) {
  const theta_emu::WarpSlots* s;
  unsigned lanes = theta_emu::vote("__all_sync", mask, pred != 0, &s, key);
  for (unsigned l = 0; l < 32; ++l)
    if ((lanes >> l & 1) && !s->out[l]) return 0;
  return 1;
}
template <class T>
inline unsigned __match_any_sync(unsigned mask, T value, unsigned key = THETA_EMU_HERE) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  const theta_emu::WarpSlots* s;
  unsigned lanes = theta_emu::vote("__match_any_sync", mask, bits, &s, key), r = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((lanes >> l & 1) && s->out[l] == bits) r |= 1u << l;
  return r;
}

namespace theta_emu {
template <class T, class Op>
inline T warp_reduce(const char* what, unsigned mask, T value, Op op, unsigned key) {
  const WarpSlots* s;
  unsigned lanes = vote(what, mask, static_cast<uint64_t>(static_cast<uint32_t>(value)), &s, key);
  bool first = true;
  T r = value;
  for (unsigned l = 0; l < 32; ++l) {
    if (!(lanes >> l & 1)) continue;
    T v = static_cast<T>(static_cast<uint32_t>(s->out[l]));
    r = first ? v : op(r, v);
    first = false;
  }
  return r;
}
}  // namespace theta_emu
inline unsigned __reduce_add_sync(unsigned m, unsigned v, unsigned key = THETA_EMU_HERE) {
  return theta_emu::warp_reduce("__reduce_add_sync", m, v, [](unsigned a, unsigned b) { return a + b; }, key);
}
inline int __reduce_add_sync(unsigned m, int v, unsigned key = THETA_EMU_HERE) {
  return static_cast<int>(__reduce_add_sync(m, static_cast<unsigned>(v), key));
}
inline unsigned __reduce_min_sync(unsigned m, unsigned v, unsigned key = THETA_EMU_HERE) {
  return theta_emu::warp_reduce("__reduce_min_sync", m, v, [](unsigned a, unsigned b) { return a < b ? a : b; }, key);
}
inline int __reduce_min_sync(unsigned m, int v, unsigned key = THETA_EMU_HERE) {
  return theta_emu::warp_reduce("__reduce_min_sync", m, v, [](int a, int b) { return a < b ? a : b; }, key);
}
inline unsigned __reduce_max_sync(unsigned m, unsigned v, unsigned key = THETA_EMU_HERE) {
  return theta_emu::warp_reduce("__reduce_max_sync", m, v, [](unsigned a, unsigned b) { return a > b ? a : b; }, key);
}
inline int __reduce_max_sync(unsigned m, int v, unsigned key = THETA_EMU_HERE) {
  return theta_emu::warp_reduce("__reduce_max_sync", m, v, [](int a, int b) { return a > b ? a : b; }, key);
}
inline unsigned __reduce_and_sync(unsigned m, unsigned v, unsigned key = THETA_EMU_HERE) {
  return theta_emu::warp_reduce("__reduce_and_sync", m, v, [](unsigned a, unsigned b) { return a & b; }, key);
}
inline unsigned __reduce_or_sync(unsigned m, unsigned v, unsigned key = THETA_EMU_HERE) {
  return theta_emu::warp_reduce("__reduce_or_sync", m, v, [](unsigned a, unsigned b) { return a | b; }, key);
}
inline unsigned __reduce_xor_sync(unsigned m, unsigned v, unsigned key = THETA_EMU_HERE) {
  return theta_emu::warp_reduce("__reduce_xor_sync", m, v, [](unsigned a, unsigned b) { return a ^ b; }, key);
}

// ---------------------------------------------------------------------------------------
// Atomics. Blocks run on several OS threads, so these are real atomics (sequentially
// consistent; CUDA's are relaxed, which is weaker). Threads of one block never race.
// ---------------------------------------------------------------------------------------
namespace theta_emu {
template <class T, class F>
inline T atomic_update(T* address, F f) {  // CAS loop for the ops without a builtin
  T old;
  __atomic_load(address, &old, __ATOMIC_RELAXED);
  T desired;
  do {
    desired = f(old);
  } while (!__atomic_compare_exchange(address, &old, &desired, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
  return old;
}
}  // namespace theta_emu

#define THETA_EMU_ATOMIC_INT(T)                                                                                   \
  inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }                             \
  inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }                             \
  inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }                           \
  inline T atomicMin(T* a, T v) { return theta_emu::atomic_update(a, [v](T o) { return v < o ? v : o; }); }       \
  inline T atomicMax(T* a, T v) { return theta_emu::atomic_update(a, [v](T o) { return v > o ? v : o; }); }       \
  inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }                             \
  inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }                               \
  inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }                             \
  inline T atomicCAS(T* a, T compare, T v) {                                                                        \
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                        \
    return compare;                                                                                                \
  }
THETA_EMU_ATOMIC_INT(int)
THETA_EMU_ATOMIC_INT(unsigned int)
THETA_EMU_ATOMIC_INT(long long)
THETA_EMU_ATOMIC_INT(unsigned long long)
#undef THETA_EMU_ATOMIC_INT

inline unsigned short atomicCAS(unsigned short* a, unsigned short compare, unsigned short v) {
  __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;
}
inline float atomicAdd(float* a, float v) { return theta_emu::atomic_update(a, [v](float o) { return o + v; }); }
inline double atomicAdd(double* a, double v) { return theta_emu::atomic_update(a, [v](double o) { return o + v; }); }
inline float atomicExch(float* a, float v) {
  float old;
  __atomic_exchange(a, &v, &old, __ATOMIC_SEQ_CST);
  return old;
}
inline unsigned atomicInc(unsigned* a, unsigned v) {
  return theta_emu::atomic_update(a, [v](unsigned o) { return o >= v ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned* a, unsigned v) {
  return theta_emu::atomic_update(a, [v](unsigned o) { return (o == 0 || o > v) ? v : o - 1; });
}
// Scoped variants: one address space on the CPU, so the same operations.
template <class... A> inline auto atomicAdd_block(A... a) { return atomicAdd(a...); }
template <class... A> inline auto atomicAdd_system(A... a) { return atomicAdd(a...); }
template <class... A> inline auto atomicCAS_block(A... a) { return atomicCAS(a...); }
template <class... A> inline auto atomicMax_block(A... a) { return atomicMax(a...); }
template <class... A> inline auto atomicMin_block(A... a) { return atomicMin(a...); }
template <class... A> inline auto atomicExch_block(A... a) { return atomicExch(a...); }

// ---------------------------------------------------------------------------------------
// Memory access hints, bit reinterpretation, integer intrinsics.
// ---------------------------------------------------------------------------------------
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

namespace theta_emu {
template <class To, class From>
inline To bit_cast(From v) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast needs equal sizes");
  To r;
  std::memcpy(&r, &v, sizeof r);
  return r;
}
}  // namespace theta_emu
inline float __int_as_float(int v) { return theta_emu::bit_cast<float>(v); }
inline int __float_as_int(float v) { return theta_emu::bit_cast<int>(v); }
inline float __uint_as_float(unsigned v) { return theta_emu::bit_cast<float>(v); }
inline unsigned __float_as_uint(float v) { return theta_emu::bit_cast<unsigned>(v); }
inline double __longlong_as_double(long long v) { return theta_emu::bit_cast<double>(v); }
inline long long __double_as_longlong(double v) { return theta_emu::bit_cast<long long>(v); }
inline double __hiloint2double(int hi, int lo) {
  unsigned long long bits = static_cast<unsigned long long>(static_cast<unsigned>(hi)) << 32;
  bits |= static_cast<unsigned>(lo);
  return __longlong_as_double(static_cast<long long>(bits));
}
inline int __double2hiint(double d) { return static_cast<int>(__double_as_longlong(d) >> 32); }
inline int __double2loint(double d) { return static_cast<int>(__double_as_longlong(d)); }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz(static_cast<unsigned>(x)) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll(static_cast<unsigned long long>(x)) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned long long __brevll(unsigned long long x) {
  unsigned long long lo = __brev(static_cast<unsigned>(x)), hi = __brev(static_cast<unsigned>(x >> 32));
  return (lo << 32) | hi;
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  unsigned long long v = (static_cast<unsigned long long>(y) << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; ++i) r |= static_cast<unsigned>((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
}
inline int __mul24(int a, int b) { return ((a << 8) >> 8) * ((b << 8) >> 8); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline long long __mul64hi(long long a, long long b) {
  return static_cast<long long>((static_cast<__int128>(a) * b) >> 64);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline int __hadd(int a, int b) { return static_cast<int>((static_cast<long long>(a) + b) >> 1); }
inline int __rhadd(int a, int b) { return static_cast<int>((static_cast<long long>(a) + b + 1) >> 1); }
inline unsigned __uhadd(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) + b) >> 1);
}
inline unsigned __urhadd(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) + b + 1) >> 1);
}
inline unsigned __sad(int a, int b, unsigned c) {
  return (a > b ? static_cast<unsigned>(a - b) : static_cast<unsigned>(b - a)) + c;
}
inline unsigned __usad(unsigned a, unsigned b, unsigned c) { return (a > b ? a - b : b - a) + c; }
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
  return static_cast<unsigned>((((static_cast<unsigned long long>(hi) << 32) | lo) << (s & 31)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
  return static_cast<unsigned>((((static_cast<unsigned long long>(hi) << 32) | lo) >> (s & 31)));
}
inline long long clock64() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
inline void __nanosleep(unsigned) {}

// CUDA's integer / mixed min and max overloads (math_functions.hpp), in the global namespace.
// Mixed signed/unsigned arguments compare as the unsigned result type, as in CUDA.
#define THETA_EMU_MINMAX(R, A, B)                                       \
  inline R min(A a, B b) {                                              \
    return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); \
  }                                                                     \
  inline R max(A a, B b) {                                              \
    return static_cast<R>(a) > static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); \
  }
THETA_EMU_MINMAX(int, int, int)
THETA_EMU_MINMAX(unsigned, unsigned, unsigned)
THETA_EMU_MINMAX(unsigned, int, unsigned)
THETA_EMU_MINMAX(unsigned, unsigned, int)
THETA_EMU_MINMAX(long, long, long)
THETA_EMU_MINMAX(unsigned long, unsigned long, unsigned long)
THETA_EMU_MINMAX(long long, long long, long long)
THETA_EMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
THETA_EMU_MINMAX(unsigned long long, long long, unsigned long long)
THETA_EMU_MINMAX(unsigned long long, unsigned long long, long long)
#undef THETA_EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }
inline unsigned umin(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned umax(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long llmin(long long a, long long b) { return a < b ? a : b; }
inline long long llmax(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long ullmin(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long ullmax(unsigned long long a, unsigned long long b) { return a > b ? a : b; }

// ---------------------------------------------------------------------------------------
// Math. <cmath>/<math.h> already give expf, log1pf, tanhf, rintf, fmaxf, ... and the
// float overloads of sqrt/exp/...; these are the CUDA-only ones. Names that glibc also
// declares (its __expf family, C23's rsqrt/sinpi/cospi) live in theta_emu::dev and are
// mapped with macros, so they never clash with the C declarations.
// ---------------------------------------------------------------------------------------
namespace theta_emu {
namespace dev {
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x), *c = cosf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rsqrt(float x) { return rsqrtf(x); }
inline double sinpi(double x) { return sin(M_PI * x); }
inline double cospi(double x) { return cos(M_PI * x); }
inline float sinpi(float x) { return static_cast<float>(sinpi(static_cast<double>(x))); }
inline float cospi(float x) { return static_cast<float>(cospi(static_cast<double>(x))); }
inline float sinpif(float x) { return sinpi(x); }
inline float cospif(float x) { return cospi(x); }
inline void sincospif(float x, float* s, float* c) { *s = sinpif(x), *c = cospif(x); }
inline void sincospi(double x, double* s, double* c) { *s = sinpi(x), *c = cospi(x); }

// erfinv: Giles' single-precision approximation refined by two Newton steps on erf.
inline double erfinv(double y) {
  if (y <= -1) return y == -1 ? -HUGE_VAL : NAN;
  if (y >= 1) return y == 1 ? HUGE_VAL : NAN;
  static const double central[] = {2.81022636e-08,  3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                                   -0.00125372503, -0.00417768164, 0.246640727,    1.50140941};
  static const double tail[] = {-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                                -0.0076224613,   0.00943887047,  1.00167406,    2.83297682};
  double w = -log((1.0 - y) * (1.0 + y));
  const double* c = w < 5.0 ? central : tail;
  w = w < 5.0 ? w - 2.5 : sqrt(w) - 3.0;
  double x = c[0];
  for (int i = 1; i < 9; ++i) x = c[i] + x * w;
  x *= y;
  for (int i = 0; i < 2; ++i) x -= (erf(x) - y) / (2.0 / sqrt(M_PI) * exp(-x * x));
  return x;
}
// erfcinv: erfinv(1 - y) where that is accurate, else Newton on log(erfc(x)) = log(y),
// which stays well-conditioned in the tails.
inline double erfcinv(double y) {
  if (y <= 0) return y == 0 ? HUGE_VAL : NAN;
  if (y >= 2) return y == 2 ? -HUGE_VAL : NAN;
  if (y > 0.0625 && y < 1.9375) return erfinv(1.0 - y);
  double t = y < 1 ? y : 2 - y;  // erfcinv(2 - t) = -erfcinv(t)
  double x = sqrt(-log(t));
  for (int i = 0; i < 50; ++i) {
    double e = erfc(x);
    double dx = (log(e) - log(t)) * e / (2.0 / sqrt(M_PI) * exp(-x * x));
    x += dx;
    if (fabs(dx) <= 1e-15 * x) break;
  }
  return y < 1 ? x : -x;
}
inline double normcdfinv(double p) { return -M_SQRT2 * erfcinv(2.0 * p); }
inline double normcdf(double x) { return 0.5 * erfc(-x * M_SQRT1_2); }
inline double erfcx(double x) {
  if (x < 25) return exp(x * x) * erfc(x);
  double r = 1 / (x * x);  // asymptotic series, erfc underflows out here
  return (1 - 0.5 * r + 0.75 * r * r - 1.875 * r * r * r) / (x * sqrt(M_PI));
}
inline float erfinv(float y) { return static_cast<float>(erfinv(static_cast<double>(y))); }
inline float erfcinv(float y) { return static_cast<float>(erfcinv(static_cast<double>(y))); }
inline float normcdfinv(float p) { return static_cast<float>(normcdfinv(static_cast<double>(p))); }
inline float normcdf(float x) { return static_cast<float>(normcdf(static_cast<double>(x))); }
inline float erfcx(float x) { return static_cast<float>(erfcx(static_cast<double>(x))); }
}  // namespace dev
}  // namespace theta_emu

#define __expf ::theta_emu::dev::__expf
#define __exp10f ::theta_emu::dev::__exp10f
#define __logf ::theta_emu::dev::__logf
#define __log2f ::theta_emu::dev::__log2f
#define __log10f ::theta_emu::dev::__log10f
#define __sinf ::theta_emu::dev::__sinf
#define __cosf ::theta_emu::dev::__cosf
#define __tanf ::theta_emu::dev::__tanf
#define __powf ::theta_emu::dev::__powf
#define __sincosf ::theta_emu::dev::__sincosf
#define rsqrtf ::theta_emu::dev::rsqrtf
#define rsqrt ::theta_emu::dev::rsqrt
#define sinpi ::theta_emu::dev::sinpi
#define cospi ::theta_emu::dev::cospi
#define sinpif ::theta_emu::dev::sinpif
#define cospif ::theta_emu::dev::cospif
#define sincospif ::theta_emu::dev::sincospif
#define sincospi ::theta_emu::dev::sincospi
#define erfinv ::theta_emu::dev::erfinv
#define erfcinv ::theta_emu::dev::erfcinv
#define normcdfinv ::theta_emu::dev::normcdfinv
#define normcdf ::theta_emu::dev::normcdf
#define erfcx ::theta_emu::dev::erfcx

inline float erfinvf(float y) { return erfinv(y); }
inline float erfcinvf(float y) { return erfcinv(y); }
inline float normcdfinvf(float p) { return normcdfinv(p); }
inline float normcdff(float x) { return normcdf(x); }
inline float erfcxf(float x) { return erfcx(x); }
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
inline double rcbrt(double x) { return 1.0 / cbrt(x); }
inline float rhypotf(float x, float y) { return 1.0f / hypotf(x, y); }
inline double rhypot(double x, double y) { return 1.0 / hypot(x, y); }
inline float norm3df(float a, float b, float c) { return sqrtf(a * a + b * b + c * c); }
inline float rnorm3df(float a, float b, float c) { return 1.0f / norm3df(a, b, c); }
inline double norm3d(double a, double b, double c) { return sqrt(a * a + b * b + c * c); }
inline double rnorm3d(double a, double b, double c) { return 1.0 / norm3d(a, b, c); }
inline float fdividef(float a, float b) { return a / b; }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0
// Correctly rounded (_rn) arithmetic is what the CPU does in its default rounding mode.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __drcp_rn(double a) { return 1.0 / a; }
inline double __dsqrt_rn(double a) { return sqrt(a); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return static_cast<unsigned>(nearbyintf(x)); }
inline unsigned __float2uint_rz(float x) { return static_cast<unsigned>(x); }
inline long long __float2ll_rn(float x) { return static_cast<long long>(nearbyintf(x)); }
inline long long __float2ll_rz(float x) { return static_cast<long long>(x); }
inline int __double2int_rn(double x) { return static_cast<int>(nearbyint(x)); }
inline int __double2int_rz(double x) { return static_cast<int>(x); }
inline long long __double2ll_rn(double x) { return static_cast<long long>(nearbyint(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
inline float __ll2float_rn(long long x) { return static_cast<float>(x); }
inline double __int2double_rn(int x) { return static_cast<double>(x); }
inline double __ll2double_rn(long long x) { return static_cast<double>(x); }
inline float __double2float_rn(double x) { return static_cast<float>(x); }
inline int __finitef(float x) { return std::isfinite(x); }
inline int __isinff(float x) { return std::isinf(x); }
inline int __isnanf(float x) { return std::isnan(x); }

#ifdef THETA_EMU_CHECK
#include "emu_check.h"
#endif

// ---------------------------------------------------------------------------------------
// Declaration qualifiers. Defined last so that no system header above sees them.
// ---------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
#define __constant__
#define __managed__
// A block's threads run on one OS thread, and a worker runs one block at a time, so a
// thread_local is exactly "one copy per running block". `extern __shared__ T x[]`
// becomes `extern thread_local T x[]`; the launcher template defines the storage.
#define __shared__ thread_local
// __restrict__ is already a GNU C++ keyword.
