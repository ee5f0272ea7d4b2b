// Internal: the bounded pool of threads that run the server's blocking handlers. At most `max`
// threads, started on demand and kept; work waits in a queue (its length is bounded by the
// server's max_connections). A thread that cannot be started is not an error: the pool serves
// with the threads it has, and retry() tries again later, so it never wedges.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sslstream::detail {

class worker_pool {
 public:
  using job = std::function<void()>;
  explicit worker_pool(std::size_t max) : max_(max == 0 ? 1 : max) {}
  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;
  ~worker_pool() { stop(); }

  void submit(job j) {
    std::lock_guard lk(m_);
    queue_.push_back(std::move(j));
    grow_locked();
    work_.notify_one();
  }
  /// After a failed thread start: tries again if work waits and no thread is idle.
  void retry() {
    std::lock_guard lk(m_);
    if (!queue_.empty()) grow_locked();
  }
  /// Runs what is queued to its end, then joins every thread.
  void stop() {
    {
      std::lock_guard lk(m_);
      stopping_ = true;
      work_.notify_all();
    }
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  std::size_t threads() {
    std::lock_guard lk(m_);
    return threads_.size();
  }
  std::size_t queued() {
    std::lock_guard lk(m_);
    return queue_.size();
  }

 private:
  void grow_locked() {
    if (idle_ >= queue_.size() || threads_.size() >= max_ || stopping_) return;
    try {
      threads_.emplace_back([this] { loop(); });
    } catch (const std::system_error&) {
      // No thread now (RLIMIT_NPROC, address space): the queue waits for a thread we have,
      // or for retry().
    }
  }
  void loop() {
    std::unique_lock lk(m_);
    for (;;) {
      ++idle_;
      work_.wait(lk, [&] { return !queue_.empty() || stopping_; });
      --idle_;
      if (queue_.empty()) return;  // stopping, nothing left
      auto j = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      j();
      lk.lock();
    }
  }

  std::size_t max_;
  std::mutex m_;
  std::condition_variable work_;
  std::deque<job> queue_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace sslstream::detail
