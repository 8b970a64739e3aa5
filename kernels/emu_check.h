// emu_check.h: emu's checking mode, a sanitizer for generated CUDA C run on the CPU.
// Included by emu.h when THETA_EMU_CHECK is defined (runtime/emu_build.py builds such modules
// with -g and runs them with one worker, so the checker's state needs no locks).
//
// Kernels declare shared memory and global scratch through the prelude's macros
// (kernels/prelude.cuh.j2): plain __shared__ / __device__ arrays under nvcc and in emu's
// normal mode, the instrumented arrays below here. Every element carries a shadow:
//
//   shared memory   who last wrote it and who read it (thread, barrier interval, warp sync
//                   count, code address). Two accesses by different threads in one barrier
//                   interval, at least one a write, race (compute-sanitizer's racecheck rule),
//                   unless both threads are in one warp and a warp-synchronous op separates
//                   them. A read of an element this block never wrote is reported (CUDA leaves
//                   shared memory undefined at block start). Declared sizes are summed against
//                   the 48 KB static limit.
//   global scratch  who wrote it, in which launch, and whether that thread has executed
//                   __threadfence() since. Another block reading an unfenced value is reported:
//                   CUDA does not promise it is visible (the split-reduction pattern needs the
//                   fence between the partial's store and the counter's atomic).
//
// Block::release (emu.h) calls the warp and barrier checks below when it releases waiters.
#pragma once

namespace theta_emu {

inline bool Block::conflict(const SharedAccess& a) const {
  if (a.tid < 0 || a.tid == cur_ || a.bar != bar_epoch_) return false;
  bool same_warp = a.tid / static_cast<int>(kWarpSize) == cur_ / static_cast<int>(kWarpSize);
  if (fibers_mode_ && same_warp && a.warp != warp_epoch_[cur_ / kWarpSize]) return false;
  return true;
}

inline void Block::race(const char* kind, const char* name, size_t index, const SharedAccess& other,
                        const void* site) {
  char message[kErrorBytes];
  Site a = site_of(other.site), b = site_of(site);
  snprintf(message, sizeof message,
           "shared-memory race (%s) on %s[%zu]: %s at %s, then this thread at %s, with no barrier between", kind, name,
           index, thread_name(other.tid).s, a.s, b.s);
  fail(message);
}

inline void Block::shared_read(SharedShadow& s, const char* name, size_t index, const void* site) {
  if (s.serial != serial_) {
    s.serial = serial_;
    s.w.tid = s.r1.tid = s.r2.tid = -1;
  }
  if (s.w.tid < 0) {
    char message[kErrorBytes];
    snprintf(message, sizeof message,
             "reads %s[%zu] at %s, which this block never wrote (shared memory is undefined at block start)", name,
             index, site_of(site).s);
    fail(message);
  }
  if (conflict(s.w)) race("read after write", name, index, s.w, site);
  SharedAccess me{cur_, bar_epoch_, fibers_mode_ ? warp_epoch_[cur_ / kWarpSize] : 0u, site};
  if (s.r1.tid < 0 || s.r1.tid == cur_ || s.r1.bar != bar_epoch_)
    s.r1 = me;
  else if (s.r2.tid < 0 || s.r2.tid == cur_ || s.r2.bar != bar_epoch_)
    s.r2 = me;
}

inline void Block::shared_write(SharedShadow& s, const char* name, size_t index, const void* site) {
  if (s.serial != serial_) {
    s.serial = serial_;
    s.w.tid = s.r1.tid = s.r2.tid = -1;
  } else {
    if (conflict(s.w)) race("write after write", name, index, s.w, site);
    if (conflict(s.r1)) race("write after read", name, index, s.r1, site);
    if (conflict(s.r2)) race("write after read", name, index, s.r2, site);
  }
  s.w = SharedAccess{cur_, bar_epoch_, fibers_mode_ ? warp_epoch_[cur_ / kWarpSize] : 0u, site};
}

inline void Block::shared_declared(uint32_t* seen, size_t bytes, const char* name) {
  if (*seen == serial_) return;
  *seen = serial_;
  shared_bytes_ += bytes;
  if (shared_bytes_ > kMaxStaticShared) {
    char message[kErrorBytes];
    snprintf(message, sizeof message,
             "the block's static shared memory reaches %zu bytes with %s (%zu bytes): more than the %zu a block may "
             "declare",
             shared_bytes_, name, bytes, kMaxStaticShared);
    fail(message);
  }
}

inline void Block::global_write(GlobalShadow& g, const void* site) {
  const uint64_t block = block_idx_.x + uint64_t(launch_.grid.x) * (block_idx_.y + uint64_t(launch_.grid.y) * block_idx_.z);
  g = GlobalShadow{launch_.id, static_cast<int64_t>(block), cur_, 0, site};
  if (npending_[cur_] == kMaxPending)
    fail("the checker tracks at most 256 global scratch writes of a thread between __threadfence() calls "
         "(a limit of emu's checking mode, not a CUDA rule)");
  pending_[static_cast<size_t>(cur_) * kMaxPending + npending_[cur_]++] = &g;
}

inline void Block::fence() {
  const uint64_t block = block_idx_.x + uint64_t(launch_.grid.x) * (block_idx_.y + uint64_t(launch_.grid.y) * block_idx_.z);
  GlobalShadow** mine = pending_ + static_cast<size_t>(cur_) * kMaxPending;
  for (int k = 0; k < npending_[cur_]; ++k) {
    GlobalShadow& g = *mine[k];
    if (g.launch == launch_.id && g.block == static_cast<int64_t>(block) && g.tid == cur_) g.visible = 1;
  }
  npending_[cur_] = 0;
}

inline void Block::global_read(GlobalShadow& g, const char* name, size_t index, const void* site) {
  const uint64_t block = block_idx_.x + uint64_t(launch_.grid.x) * (block_idx_.y + uint64_t(launch_.grid.y) * block_idx_.z);
  if (g.launch != launch_.id || g.block == static_cast<int64_t>(block) || g.visible) return;
  char message[kErrorBytes];
  Site a = site_of(site), b = site_of(g.site);
  snprintf(message, sizeof message,
           "reads %s[%zu] at %s, written at %s by thread %d of block %lld, which executed no __threadfence() after "
           "writing it: CUDA does not promise another block sees the value",
           name, index, a.s, b.s, g.tid, static_cast<long long>(g.block));
  fail(message);
}

// At a warp op's release: every lane named in a released lane's mask executes the same warp op
// (same source line) with the same mask, and none of them has exited (CUDA's rule). Disjoint
// groups of one warp, each with its own mask, are released together and are fine.
inline bool Block::check_warp_release(int w, unsigned go) {
  const WarpSlots& s = warps_[w];
  const int first_lane = w * static_cast<int>(kWarpSize);
  const unsigned existing = (n_ - first_lane) >= 32 ? 0xffffffffu : ((1u << (n_ - first_lane)) - 1);
  for (unsigned l = 0; l < kWarpSize; ++l) {
    if (!(go >> l & 1)) continue;
    const int t = first_lane + static_cast<int>(l);
    if (unsigned exited = mask_arg_[t] & ~s.live & existing) {
      snprintf(error_, sizeof error_, "%s: %s with mask 0x%08x at %s names lanes 0x%08x that have exited",
               thread_name(t).s, op_[t], mask_arg_[t], site_of(site_[t]).s, exited);
      return false;
    }
    for (unsigned m = 0; m < kWarpSize; ++m) {
      const int u = first_lane + static_cast<int>(m);
      if (!((go & mask_arg_[t]) >> m & 1) || u == t) continue;
      if (!strcmp(op_[t], op_[u]) && key_[t] == key_[u] && mask_arg_[t] == mask_arg_[u]) continue;
      Site a = site_of(site_[u]), b = site_of(site_[t]);
      snprintf(error_, sizeof error_,
               "warp lanes are not converged: %s is in %s (mask 0x%08x) at %s while %s is in %s (mask 0x%08x) at %s",
               thread_name(u).s, op_[u], mask_arg_[u], a.s, thread_name(t).s, op_[t], mask_arg_[t], b.s);
      return false;
    }
  }
  ++warp_epoch_[w];
  return true;
}

// At a barrier's release: every waiting thread waits at the same __syncthreads (source line).
inline bool Block::check_barrier_release() {
  int first = -1;
  for (int i = 0; i < n_; ++i) {
    if (fib_[i].wait != Wait::Barrier) continue;
    if (first < 0) {
      first = i;
    } else if (key_[i] != key_[first]) {
      Site a = site_of(site_[first]), b = site_of(site_[i]);
      snprintf(error_, sizeof error_, "divergent __syncthreads: %s waits at the barrier at %s, %s at the one at %s",
               thread_name(first).s, a.s, thread_name(i).s, b.s);
      return false;
    }
  }
  ++bar_epoch_;
  return true;
}

[[noreturn]] __attribute__((noinline)) inline void out_of_bounds(const char* name, size_t index, size_t size) {
  char message[kErrorBytes];
  snprintf(message, sizeof message, "index %zu out of bounds of %s (%zu elements) at %s", index, name, size,
           site_of(__builtin_return_address(0)).s);
  fail(message);
}

#define THETA_EMU_INLINE __attribute__((always_inline)) inline
#define THETA_EMU_SITE __attribute__((noinline))

// One shared element, read and written through the checker. The noinline note_* functions
// take their return address: the call sits in the kernel's code (the operators are inlined).
template <class T>
struct SharedRef {
  T* p;
  SharedShadow* s;
  const char* name;
  size_t index, left;  // left: elements from here to the end of the array

  THETA_EMU_SITE void note_read() const { current("shared memory").shared_read(*s, name, index, __builtin_return_address(0)); }
  THETA_EMU_SITE void note_write() const { current("shared memory").shared_write(*s, name, index, __builtin_return_address(0)); }
  THETA_EMU_INLINE operator T() const {
    note_read();
    return *p;
  }
  THETA_EMU_INLINE const SharedRef& operator=(T v) const {
    note_write();
    *p = v;
    return *this;
  }
  THETA_EMU_INLINE const SharedRef& operator=(const SharedRef& o) const { return *this = static_cast<T>(o); }
#define THETA_EMU_COMPOUND(OP)                                                   \
  template <class U>                                                             \
  THETA_EMU_INLINE const SharedRef& operator OP##=(U v) const {                  \
    return *this = static_cast<T>(static_cast<T>(*this) OP v);                   \
  }
  THETA_EMU_COMPOUND(+)
  THETA_EMU_COMPOUND(-)
  THETA_EMU_COMPOUND(*)
  THETA_EMU_COMPOUND(/)
  THETA_EMU_COMPOUND(|)
  THETA_EMU_COMPOUND(&)
  THETA_EMU_COMPOUND(^)
#undef THETA_EMU_COMPOUND
};

template <class T, size_t B>
struct SharedRow {
  T* data;
  SharedShadow* shadow;
  const char* name;
  size_t base, limit;
  THETA_EMU_INLINE SharedRef<T> operator[](size_t j) const {
    if (j >= B) out_of_bounds(name, base + j, limit + base);
    return SharedRef<T>{data + j, shadow + j, name, base + j, limit - j};
  }
};

// __shared__ T name[N] (THETA_SHARED); zero-initialized storage, constant-initialized name.
template <class T, size_t N>
struct Shared {
  const char* name;
  uint32_t seen;
  alignas(16) T data[N];
  SharedShadow shadow[N];
  THETA_EMU_INLINE SharedRef<T> operator[](size_t i) {
    current("shared memory").shared_declared(&seen, sizeof data, name);
    if (i >= N) out_of_bounds(name, i, N);
    return SharedRef<T>{data + i, shadow + i, name, i, N - i};
  }
};

// __shared__ T name[A][B] (THETA_SHARED2).
template <class T, size_t A, size_t B>
struct Shared2 {
  const char* name;
  uint32_t seen;
  alignas(16) T data[A][B];
  SharedShadow shadow[A][B];
  THETA_EMU_INLINE SharedRow<T, B> operator[](size_t i) {
    current("shared memory").shared_declared(&seen, sizeof data, name);
    if (i >= A) out_of_bounds(name, i * B, A * B);
    return SharedRow<T, B>{data[i], shadow[i], name, i * B, (A - i) * B};
  }
};

// __shared__ T name (THETA_SHARED_VAR).
template <class T>
struct SharedVar {
  const char* name;
  uint32_t seen;
  T data;
  SharedShadow shadow;
  THETA_EMU_INLINE SharedRef<T> ref() {
    current("shared memory").shared_declared(&seen, sizeof data, name);
    return SharedRef<T>{&data, &shadow, name, 0, 1};
  }
  THETA_EMU_INLINE operator T() { return ref(); }
  THETA_EMU_INLINE SharedVar& operator=(T v) {
    ref() = v;
    return *this;
  }
};

// *reinterpret_cast<const V*>(&ref) (THETA_SMEM_VEC): each element it covers is a checked read.
template <class V, class T>
THETA_EMU_SITE V smem_vec(SharedRef<T> r) {
  constexpr size_t n = sizeof(V) / sizeof(T);
  static_assert(n * sizeof(T) == sizeof(V), "a vector of whole elements");
  if (r.left < n) out_of_bounds(r.name, r.index + n - 1, r.index + r.left);
  const void* site = __builtin_return_address(0);
  for (size_t k = 0; k < n; ++k) current("shared memory").shared_read(r.s[k], r.name, r.index + k, site);
  V v;
  std::memcpy(&v, r.p, sizeof v);
  return v;
}

// One element of global scratch (THETA_DEVICE_ARRAY).
template <class T>
struct GlobalRef {
  T* p;
  GlobalShadow* g;
  const char* name;
  size_t index;
  THETA_EMU_SITE void note_read() const { current("global scratch").global_read(*g, name, index, __builtin_return_address(0)); }
  THETA_EMU_SITE void note_write() const { current("global scratch").global_write(*g, __builtin_return_address(0)); }
  THETA_EMU_INLINE operator T() const {
    note_read();
    return *p;
  }
  THETA_EMU_INLINE const GlobalRef& operator=(T v) const {
    note_write();
    *p = v;
    return *this;
  }
};

template <class T, size_t N>
struct DeviceArray {
  const char* name;
  T data[N];
  GlobalShadow shadow[N];
  THETA_EMU_INLINE GlobalRef<T> operator[](size_t i) {
    if (i >= N) out_of_bounds(name, i, N);
    return GlobalRef<T>{data + i, shadow + i, name, i};
  }
};

#undef THETA_EMU_INLINE
#undef THETA_EMU_SITE

}  // namespace theta_emu
