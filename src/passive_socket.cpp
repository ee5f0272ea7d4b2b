// Listening sockets: bind, listen, accept with or without a wait.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <sslstream/socket.hpp>
#include <stdexcept>

#include "socket_impl.hpp"

namespace sslstream {

struct passive_socket::state {
  detail::unique_fd fd;
  detail::endpoint local;
  bool all_interfaces = false;
  bool nodelay = true;
  bool keepalive = false;
};

namespace {

detail::unique_fd bind_listen(int family, const sockaddr* addr, socklen_t len, const passive& o,
                              const std::string& shown) {
  detail::unique_fd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) detail::throw_socket_error(errno, "socket");
  int one = 1, zero = 0;
  if (o.reuse_address) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6 && o.local_host.empty())  // one socket for IPv6 and IPv4 peers
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (::bind(fd.get(), addr, len) != 0) {
    int err = errno;
    std::string hint = err == EADDRINUSE ? " (another program is listening there: choose "
                                           "another port, or port 0 to let the system pick)"
                                         : "";
    detail::throw_socket_error(err, "listen on " + shown + hint);
  }
  if (::listen(fd.get(), o.backlog) != 0) detail::throw_socket_error(errno, "listen on " + shown);
  return fd;
}

}  // namespace

passive_socket make_socket(const passive& o) {
  auto s = std::make_unique<passive_socket::state>();
  s->nodelay = o.nodelay;
  s->keepalive = o.keepalive;
  std::string shown =
      (o.local_host.empty() ? "*" : o.local_host) + " port " + std::to_string(o.local_port);
  if (o.local_host.empty()) {
    s->all_interfaces = true;
    sockaddr_in6 a6{};
    a6.sin6_family = AF_INET6;
    a6.sin6_addr = in6addr_any;
    a6.sin6_port = htons(o.local_port);
    try {
      s->fd = bind_listen(AF_INET6, reinterpret_cast<sockaddr*>(&a6), sizeof a6, o, shown);
    } catch (const socket_error& e) {
      if (e.code().value() != EAFNOSUPPORT) throw;
      sockaddr_in a4{};  // a host without IPv6
      a4.sin_family = AF_INET;
      a4.sin_addr.s_addr = htonl(INADDR_ANY);
      a4.sin_port = htons(o.local_port);
      s->fd = bind_listen(AF_INET, reinterpret_cast<sockaddr*>(&a4), sizeof a4, o, shown);
    }
  } else {
    auto list = detail::resolve(o.local_host, o.local_port, AI_PASSIVE);
    s->fd = bind_listen(list->ai_family, list->ai_addr, list->ai_addrlen, o, shown);
  }
  s->local = detail::local_endpoint(s->fd.get());
  return passive_socket(std::move(s));
}

passive_socket adopt_passive_socket(int fd) {
  detail::check_stream_socket(fd, true, "adopt_passive_socket");
  detail::set_nonblocking(fd);
  auto s = std::make_unique<passive_socket::state>();
  s->local = detail::local_endpoint(fd);
  s->fd.reset(fd);
  return passive_socket(std::move(s));
}

passive_socket::passive_socket(std::unique_ptr<state> s) : s_(std::move(s)) {}
passive_socket::passive_socket(passive_socket&&) noexcept = default;
passive_socket& passive_socket::operator=(passive_socket&&) noexcept = default;
passive_socket::~passive_socket() = default;

std::optional<socket_stream> passive_socket::accept_connection(std::chrono::milliseconds wait) {
  if (!is_open()) throw std::logic_error("sslstream: accept_connection on a closed passive_socket");
  // A wait of 0 still checks once; deadline_after(0) would mean "no limit".
  detail::deadline until = detail::clock::now() + (wait.count() > 0 ? wait : wait.zero());
  for (;;) {
    detail::connection_parts p;
    p.remote.len = sizeof p.remote.addr;
    int fd = ::accept4(s_->fd.get(), reinterpret_cast<sockaddr*>(&p.remote.addr), &p.remote.len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      p.fd.reset(fd);
      if (p.remote.addr.ss_family != AF_UNIX)
        detail::apply_stream_options(fd, s_->nodelay, s_->keepalive);
      p.local = detail::local_endpoint(fd);
      return socket_stream(std::make_unique<detail::socket_impl>(std::move(p)));
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      if (wait.count() < 0) {
        detail::poll_until(s_->fd.get(), POLLIN, std::nullopt);
      } else if (detail::poll_until(s_->fd.get(), POLLIN, until) == 0) {
        return std::nullopt;
      }
    } else if (err != EINTR && err != ECONNABORTED && err != EPROTO) {
      // A connection that was reset while queued is the peer's problem, not the listener's.
      detail::throw_socket_error(err, "accept on port " + std::to_string(local_port()));
    }
  }
}

socket_stream passive_socket::accept_connection() {
  return *accept_connection(std::chrono::milliseconds(-1));
}

std::uint16_t passive_socket::local_port() const noexcept { return s_ ? s_->local.port() : 0; }
std::string passive_socket::local_host() const {
  return !s_ ? "" : s_->all_interfaces ? "*" : s_->local.host();
}
void passive_socket::close() noexcept {
  if (s_) s_->fd.reset();
}
bool passive_socket::is_open() const noexcept { return s_ && s_->fd; }
int passive_socket::native_handle() const noexcept { return is_open() ? s_->fd.get() : -1; }

std::ostream& operator<<(std::ostream& os, const passive_socket& s) {
  if (!s.s_) return os << "#<passive socket (moved from)>";
  return os << "#<passive socket " << (s.is_open() ? "" : "closed, but was ")
            << "waiting for connection at " << s.local_host() << '/' << s.local_port() << '>';
}

}  // namespace sslstream
