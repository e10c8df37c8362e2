// ThreadPool: a fixed set of workers that run one parallel_for at a time with low wake-up
// latency (workers spin briefly before sleeping), because decode issues ~100 small matmuls
// per token and a condition-variable wake-up per matmul would cost more than the work.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util/status.h"

namespace frugal {

class ThreadPool {
 public:
  // `n_threads` counts the calling thread: 1 means no workers, everything runs inline. When
  // the system refuses a thread (ulimit -u), the pool runs with the threads it got; create()
  // reports that instead.
  explicit ThreadPool(int n_threads);
  // A pool of exactly `n_threads` threads (0: default_thread_count()). Errors:
  // kInvalidArgument for a negative count or one above max_thread_count(); kUnavailable when the system refuses to start a thread (the
  // process limit, memory), saying how many started.
  static Result<std::unique_ptr<ThreadPool>> create(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  // Calls fn(thread_index) once on each of the n_threads threads (index 0 is the caller) and
  // returns when all have finished. Callers on different threads (two models sharing the
  // pool) take turns, one job at a time. Not re-entrant: fn must not call run() again.
  void run(const std::function<void(int)>& fn);

  // Splits [0, n) into n_threads contiguous chunks, each a multiple of `grain` except the
  // last, and calls fn(begin, end, thread_index) on each non-empty chunk.
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  struct NoWorkers {};
  ThreadPool(int n_threads, NoWorkers);
  // Starts workers 1 .. n_threads-1; on a refusal keeps those started and returns the error.
  Status start_workers();
  void worker_loop(int index);

  int n_threads_;
  std::mutex run_mutex_;  // one job at a time when several threads share the pool
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

// The number of threads to use when the user gives none: the hardware's count.
int default_thread_count();

// The most threads a pool may have: 4 x the hardware threads. More only adds switching, and a
// mistyped count (100000) would otherwise spawn until the system refuses.
int max_thread_count();

// A thread count as the user gave it: 0 means default_thread_count(). Errors: kInvalidArgument
// for a negative count or one above max_thread_count(), giving both numbers.
Result<int> resolve_thread_count(int64_t requested);

// Starts `fn` on a new thread; every thread the program starts goes through here (or through
// ThreadPool::create), because std::thread throws std::system_error when the system refuses
// (ulimit -u, ulimit -s, memory). Errors: kUnavailable naming `what` ("the scheduler loop").
Result<std::thread> start_thread(std::function<void()> fn, const std::string& what);

// A parallel section costs microseconds to hand off, and a whole timeslice when the machine is
// busy, so work below this many units (about one multiply-add each) per chunk stays on the
// calling thread: a 2.5M-parameter model decodes 30x faster on one thread than split in two.
constexpr int64_t kMinParallelWork = int64_t{1} << 17;

// The parallel_for grain that gives every chunk at least kMinParallelWork units when each item
// costs `work_per_item`, rounded up to a multiple of `multiple`.
int64_t parallel_grain(int64_t work_per_item, int64_t multiple = 1);

}  // namespace frugal
