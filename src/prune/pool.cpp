// run_pool: a shared job counter, a byte budget guarded by a condition variable, error capture.
#include "prune/pool.hpp"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sparsity::prune {

void run_pool(size_t n, int workers, uint64_t budget, const std::function<uint64_t(size_t)>& cost,
              const std::function<void(size_t, int)>& job) {
  std::mutex mu;
  std::condition_variable cv;
  size_t next = 0;
  uint64_t in_use = 0;
  int running = 0;
  std::exception_ptr error;

  auto worker = [&](int w) {
    for (;;) {
      size_t i;
      uint64_t c;
      {
        std::unique_lock<std::mutex> lock(mu);
        if (error || next >= n) return;
        i = next++;
        c = cost(i);
        // Wait for room; alone (running == 0) a job always fits.
        cv.wait(lock, [&] { return error || running == 0 || in_use + c <= budget; });
        if (error) return;
        in_use += c;
        ++running;
      }
      try {
        job(i, w);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        in_use -= c;
        --running;
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(worker, w);
  worker(0);
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace sparsity::prune
