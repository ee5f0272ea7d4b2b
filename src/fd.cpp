#include "fd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sslstream/error.hpp>

namespace sslstream::detail {

void unique_fd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);  // never retried on EINTR: Linux has already freed the descriptor
  fd_ = fd;
}

short poll_until(int fd, short events, const deadline& until) {
  for (;;) {
    int ms = -1;
    if (until) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*until - clock::now()).count();
      if (left <= 0) left = 0;
      ms = left > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(left);
    }
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, ms);
    if (n > 0) return p.revents;
    if (n < 0 && errno != EINTR) throw_socket_error(errno, "poll");
    if (n == 0 && until && clock::now() >= *until) return 0;
  }
}

short wait_for(int fd, short events, const deadline& until, const char* what) {
  if (short r = poll_until(fd, events, until)) return r;
  // Say which way the peer stalled and what sets the limit: "timed out" alone helps nobody.
  throw socket_error(std::error_code(ETIMEDOUT, std::system_category()), "timeout",
                     std::string(what) + " timed out waiting for the peer " +
                         ((events & POLLIN) ? "to send" : "to take our data") +
                         " (the limit is the stream's timeout: set_timeout)");
}

void throw_socket_error(int err, const std::string& what) {
  throw socket_error(std::error_code(err, std::system_category()), errno_identifier(err),
                     what + ": " + std::strerror(err));
}

void close_gracefully(unique_fd& fd) noexcept {
  if (!fd) return;
  char scratch[16384];
  for (int i = 0; i < 64; ++i)  // at most 1 MiB
    if (::recv(fd.get(), scratch, sizeof scratch, MSG_DONTWAIT) <= 0) break;
  fd.reset();
}

void set_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) throw_socket_error(errno, "fcntl");
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

}  // namespace sslstream::detail
