// run_pool: jobs on worker threads under a memory budget, the first error stopping the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace sparsity::prune {

/// Runs job(i, worker) for every i in [0, n), in order of i, on `workers` threads (the caller's thread
/// is worker 0). A job starts only while the running jobs' cost(i) sum stays within `budget`; a job
/// that alone exceeds it runs by itself. The first exception stops handing out jobs; the running ones
/// finish and it is rethrown.
void run_pool(size_t n, int workers, uint64_t budget, const std::function<uint64_t(size_t)>& cost,
              const std::function<void(size_t, int)>& job);

}  // namespace sparsity::prune
