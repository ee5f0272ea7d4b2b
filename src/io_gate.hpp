// Internal: the gate every I/O call of a stream passes, so that another thread may cancel it.
// close() and shutdown(input) from another thread must wake a reader blocked in poll() at once,
// and must never close a descriptor that a reader still polls (its number could be reused by
// then, and the reader would wait on, or read, someone else's file). So: every call enters the
// gate; a closer marks the gate closing (new calls are refused), wakes the calls inside with
// shutdown(2) on the socket, waits until they have left, and only then closes the descriptor.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <sslstream/error.hpp>
#include <system_error>

namespace sslstream::detail {

class io_gate {
 public:
  class pass {
   public:
    explicit pass(io_gate& g) : g_(g) {}
    pass(const pass&) = delete;
    pass& operator=(const pass&) = delete;
    ~pass() { g_.leave(); }

   private:
    io_gate& g_;
  };

  /// Enters, or throws socket_error "closed" once the stream is being closed.
  [[nodiscard]] pass enter() {
    std::lock_guard lk(m_);
    if (closing_) throw_closed();
    ++inside_;
    return pass(*this);
  }
  bool closing() const {
    std::lock_guard lk(m_);
    return closing_;
  }
  /// Wakes the calls inside (if any) with shutdown(fd, how), without closing anything.
  void wake(int fd, int how) {
    std::lock_guard lk(m_);
    if (inside_ > 0 && fd >= 0) ::shutdown(fd, how);
  }
  /// Refuses new calls, wakes those inside and waits until they have left. After this the
  /// descriptor may be closed. Returns whether anyone had to be woken.
  bool close(int fd) {
    std::unique_lock lk(m_);
    closing_ = true;
    if (inside_ == 0) return false;
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    left_.wait(lk, [&] { return inside_ == 0; });  // woken calls leave at once
    return true;
  }
  [[noreturn]] static void throw_closed() {
    throw socket_error(std::error_code(ECANCELED, std::system_category()), "closed",
                       "the stream was closed (by close() on another thread)");
  }

 private:
  void leave() {
    std::lock_guard lk(m_);
    if (--inside_ == 0) left_.notify_all();
  }
  mutable std::mutex m_;
  std::condition_variable left_;
  int inside_ = 0;
  bool closing_ = false;
};

}  // namespace sslstream::detail
