// Internal: an owned descriptor and a poll with a deadline — the only way sslstream waits.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>

namespace sslstream::detail {

using clock = std::chrono::steady_clock;
/// nullopt = wait without limit.
using deadline = std::optional<clock::time_point>;

/// A deadline `timeout` from now; 0 means none.
inline deadline deadline_after(std::chrono::milliseconds timeout) {
  if (timeout.count() <= 0) return std::nullopt;
  return clock::now() + timeout;
}

class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// Waits until `fd` is ready for `events`; returns the revents, or 0 when the deadline passed.
short poll_until(int fd, short events, const deadline& until);

/// Waits until `fd` is ready for `events` (POLLIN / POLLOUT). Throws socket_error "timeout"
/// (ETIMEDOUT) when the deadline passes first; `what` names the operation in the message.
/// Returns the revents (POLLERR/POLLHUP are returned, not thrown: the next I/O call reports them).
short wait_for(int fd, short events, const deadline& until, const char* what);

/// Throws socket_error for `err` (an errno) with "<what>: <strerror>" as the message.
[[noreturn]] void throw_socket_error(int err, const std::string& what);

/// Closes a connected socket without turning it into a reset: data the peer sent that was never
/// read (a TLS 1.3 session ticket, say) makes close() send RST, and an RST can destroy the
/// last bytes we sent before the peer reads them. So discard what is already queued (bounded,
/// never waiting), then close. An abortive close (SO_LINGER 0) still resets, as asked.
void close_gracefully(unique_fd& fd) noexcept;

/// Makes a descriptor non-blocking and close-on-exec.
void set_nonblocking(int fd);

}  // namespace sslstream::detail
