// ThreadPool: spin-then-wait workers around a generation counter.
#include "util/thread_pool.h"

#include <algorithm>
#include <string>
#include <system_error>

#include "util/check.h"

namespace frugal {

namespace {
// Workers spin this long for the next job before sleeping on the generation counter; waits
// yield the core after kYieldAfter spins so that an oversubscribed machine (parallel tests,
// other processes) lets the thread being waited for run.
constexpr int kSpinIterations = 200000;
constexpr int kYieldAfter = 2000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  (void)start_workers();  // on a refusal, runs with the workers it got
}

ThreadPool::ThreadPool(int n_threads, NoWorkers) : n_threads_(std::max(1, n_threads)) {}

Status ThreadPool::start_workers() {
  const int wanted = n_threads_;
  for (int i = 1; i < wanted; ++i) {
    try {
      workers_.emplace_back([this, i] { worker_loop(i); });
    } catch (const std::system_error& e) {
      n_threads_ = i;  // the caller and the i - 1 workers that did start
      return unavailable("the system refused to start thread " + std::to_string(i + 1) +
                         " of " + std::to_string(wanted) + " (" + e.what() +
                         "); the process limit (ulimit -u), the stack size limit (ulimit -s) "
                         "or memory may be too tight: use fewer threads");
    }
  }
  return Status::ok();
}

Result<std::unique_ptr<ThreadPool>> ThreadPool::create(int n_threads) {
  FRUGAL_ASSIGN_OR_RETURN(int n, resolve_thread_count(n_threads));
  std::unique_ptr<ThreadPool> pool(new ThreadPool(n, NoWorkers{}));
  FRUGAL_RETURN_IF_ERROR(pool->start_workers());  // the destructor joins those that started
  return pool;
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  while (true) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      if (spin < kYieldAfter) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    (*job_)(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  std::lock_guard<std::mutex> lock(run_mutex_);
  CHECK(pending_.load() == 0, "ThreadPool::run is not re-entrant");
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  fn(0);
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < kYieldAfter) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n + grain - 1) / grain;
  const int threads = static_cast<int>(std::min<int64_t>(n_threads_, n_grains));
  if (threads <= 1) {
    fn(0, n, 0);
    return;
  }
  run([&](int t) {
    if (t >= threads) return;
    const int64_t g0 = n_grains * t / threads;
    const int64_t g1 = n_grains * (t + 1) / threads;
    const int64_t begin = g0 * grain;
    const int64_t end = std::min(n, g1 * grain);
    if (begin < end) fn(begin, end, t);
  });
}

int64_t parallel_grain(int64_t work_per_item, int64_t multiple) {
  multiple = std::max<int64_t>(1, multiple);
  const int64_t items = (kMinParallelWork + std::max<int64_t>(1, work_per_item) - 1) /
                        std::max<int64_t>(1, work_per_item);
  return (items + multiple - 1) / multiple * multiple;
}

int default_thread_count() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int max_thread_count() { return 4 * default_thread_count(); }

Result<std::thread> start_thread(std::function<void()> fn, const std::string& what) {
  try {
    return std::thread(std::move(fn));
  } catch (const std::system_error& e) {
    return unavailable("the system refused to start a thread for " + what + " (" + e.what() +
                       "); the process limit (ulimit -u), the stack size limit (ulimit -s) or "
                       "memory may be too tight");
  }
}

Result<int> resolve_thread_count(int64_t requested) {
  if (requested == 0) return default_thread_count();
  if (requested < 0) {
    return invalid_argument("a thread count of " + std::to_string(requested) +
                            " is negative; give 1 or more (0 for one per hardware thread)");
  }
  if (requested > max_thread_count()) {
    return invalid_argument("a thread count of " + std::to_string(requested) + " is more than " +
                            std::to_string(max_thread_count()) + " (4 x the " +
                            std::to_string(default_thread_count()) +
                            " hardware threads); more threads than cores only slow it down");
  }
  return static_cast<int>(requested);
}

}  // namespace frugal
