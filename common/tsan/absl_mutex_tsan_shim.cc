// Tells ThreadSanitizer about absl::Mutex in TSan builds.
//
// Why: Debian ships Abseil as shared libraries built without TSan, so TSan cannot see
// absl::Mutex's synchronisation and reports every access guarded by one as a race. This
// file (linked into executables only in TSan builds) defines absl::Mutex's and
// absl::CondVar's locking entry points in the executable: each forwards to the real
// implementation (found with dlsym(RTLD_NEXT)) and adds the matching
// __tsan_acquire/__tsan_release on the mutex's address. Conditions are wrapped so that
// their evaluation, which Abseil may run in another thread while the lock is held (the
// one unlocking), happens after an acquire too; the wrapper is built before the waiter
// releases, so that thread also sees the wrapper itself. The LockWhen family becomes
// Lock then Await, so it takes the same path. No race report is suppressed: real races
// on data outside the lock are still found.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);

namespace {

template <typename Fn>
Fn Real(const char* mangled) {
  void* sym = dlsym(RTLD_NEXT, mangled);
  if (sym == nullptr) {
    std::fprintf(stderr, "absl tsan shim: %s not found\n", mangled);
    std::abort();
  }
  return reinterpret_cast<Fn>(sym);
}

// Member functions are called as functions taking `this` first (Itanium ABI).
using VoidFn = void (*)(absl::Mutex*);
using BoolFn = bool (*)(absl::Mutex*);
using CondFn = void (*)(absl::Mutex*, const absl::Condition&);
using CondBoolDurFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Duration);
using CondBoolTimeFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Time);
using CvWaitFn = void (*)(absl::CondVar*, absl::Mutex*);
using CvWaitDurFn = bool (*)(absl::CondVar*, absl::Mutex*, absl::Duration);
using CvWaitTimeFn = bool (*)(absl::CondVar*, absl::Mutex*, absl::Time);

// A condition evaluated inside the mutex in TSan's eyes: after an acquire, and before
// a release, because Abseil unlocks a waiter's mutex inside Await without telling
// TSan; without the release, the next holder's writes race the waiter's last
// evaluation (seen: a condition reading a vector's size, then a push_back under lock).
struct TsanCondition {
  const absl::Condition* inner;
  absl::Mutex* mu;
  static bool Eval(TsanCondition* self) {
    __tsan_acquire(self->mu);
    bool holds = self->inner->Eval();
    __tsan_release(self->mu);
    return holds;
  }
  absl::Condition Wrap() { return absl::Condition(&TsanCondition::Eval, this); }
};

// Abseil's deadlock detector keeps one lock-order graph guarded by Abseil's own
// spinlock, which TSan cannot see either: CI caught a false race inside
// GraphCycles::GetId between two workers' first locks. Off in TSan builds; the release
// and ASan test runs keep it.
[[maybe_unused]] const bool kDeadlockDetectionOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

}  // namespace

namespace absl {
inline namespace debian3 {

#define TANDEM_REAL(type, name) static const type real = Real<type>(name)

void Mutex::Lock() {
  TANDEM_REAL(VoidFn, "_ZN4absl7debian35Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}
void Mutex::Unlock() {
  TANDEM_REAL(VoidFn, "_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}
bool Mutex::TryLock() {
  TANDEM_REAL(BoolFn, "_ZN4absl7debian35Mutex7TryLockEv");
  bool ok = real(this);
  if (ok) __tsan_acquire(this);
  return ok;
}
void Mutex::ReaderLock() {
  TANDEM_REAL(VoidFn, "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}
void Mutex::ReaderUnlock() {
  TANDEM_REAL(VoidFn, "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}
bool Mutex::ReaderTryLock() {
  TANDEM_REAL(BoolFn, "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  bool ok = real(this);
  if (ok) __tsan_acquire(this);
  return ok;
}
void Mutex::Await(const Condition& cond) {
  TANDEM_REAL(CondFn, "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  TsanCondition wrapped{&cond, this};
  Condition condition = wrapped.Wrap();
  __tsan_release(this);
  real(this, condition);
  __tsan_acquire(this);
}
void Mutex::LockWhen(const Condition& cond) {
  Lock();
  Await(cond);
}
void Mutex::ReaderLockWhen(const Condition& cond) {
  ReaderLock();
  Await(cond);
}
bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  TANDEM_REAL(CondBoolDurFn,
              "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  TsanCondition wrapped{&cond, this};
  Condition condition = wrapped.Wrap();
  __tsan_release(this);
  bool ok = real(this, condition, timeout);
  __tsan_acquire(this);
  return ok;
}
bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  TANDEM_REAL(CondBoolTimeFn,
              "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  TsanCondition wrapped{&cond, this};
  Condition condition = wrapped.Wrap();
  __tsan_release(this);
  bool ok = real(this, condition, deadline);
  __tsan_acquire(this);
  return ok;
}
bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  Lock();
  return AwaitWithTimeout(cond, timeout);
}
bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  Lock();
  return AwaitWithDeadline(cond, deadline);
}
void CondVar::Wait(Mutex* mu) {
  TANDEM_REAL(CvWaitFn, "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}
bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  TANDEM_REAL(CvWaitDurFn,
              "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  bool timed_out = real(this, mu, timeout);
  __tsan_acquire(mu);
  return timed_out;
}
bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  TANDEM_REAL(CvWaitTimeFn,
              "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  bool timed_out = real(this, mu, deadline);
  __tsan_acquire(mu);
  return timed_out;
}

#undef TANDEM_REAL

}  // namespace debian3
}  // namespace absl
