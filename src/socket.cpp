// Connected TCP streams: connect, read/write with deadlines, half close, printing.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <ostream>
#include <sslstream/socket.hpp>
#include <stdexcept>

#include "socket_impl.hpp"

namespace sslstream {
namespace detail {

std::string endpoint::host() const {
  if (addr.ss_family == AF_UNIX) return "";  // no host: Unix-domain
  char buf[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, buf, sizeof buf);
  } else if (addr.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6))  // an IPv4 peer of a dual-stack listener
      inet_ntop(AF_INET, &a6.s6_addr[12], buf, sizeof buf);
    else
      inet_ntop(AF_INET6, &a6, buf, sizeof buf);
  }
  return buf;
}

std::uint16_t endpoint::port() const {
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return 0;
}

bool endpoint::is_loopback() const {
  auto h = host();
  return h == "::1" || h.starts_with("127.");
}

std::string endpoint::display() const {
  if (addr.ss_family == AF_UNIX) {
    const auto& un = reinterpret_cast<const sockaddr_un&>(addr);
    auto off = offsetof(sockaddr_un, sun_path);
    std::string path = len > off && un.sun_path[0] != '\0'
                           ? std::string(un.sun_path, strnlen(un.sun_path, len - off))
                           : std::string();
    return "unix:" + (path.empty() ? std::string("(unnamed)") : path);
  }
  // Allegro prints host names; a reverse lookup here could block, so only loopback is named.
  return (is_loopback() ? std::string("localhost") : host()) + "/" + std::to_string(port());
}

std::size_t socket_read(int fd, std::span<std::byte> out, const deadline& until) {
  for (;;) {
    auto n = ::recv(fd, out.data(), out.size(), 0);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait_for(fd, POLLIN, until, "read");
    } else if (errno != EINTR) {
      throw_socket_error(errno, "read");
    }
  }
}

void socket_write(int fd, std::span<const std::byte> in, deadline until,
                  std::chrono::milliseconds restart) {
  while (!in.empty()) {
    auto n = ::send(fd, in.data(), in.size(), MSG_NOSIGNAL);  // no SIGPIPE, per call
    if (n >= 0) {
      in = in.subspan(static_cast<std::size_t>(n));
      if (n > 0 && restart.count() > 0) until = deadline_after(restart);  // the peer reads
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait_for(fd, POLLOUT, until, "write");
    } else if (errno != EINTR) {
      throw_socket_error(errno, "write");
    }
  }
}

std::size_t socket_impl::read_some(std::span<std::byte> out) {
  auto pass = gate.enter();  // first: a shutdown(input) after this point finds us and wakes us
  if (input_shut || !parts.fd) return 0;
  auto n = socket_read(parts.fd.get(), out, deadline_after(parts.read_timeout));
  if (n == 0 && gate.closing()) io_gate::throw_closed();  // woken by close(), not the peer
  return n;
}

void socket_impl::write_all(std::span<const std::byte> in) {
  auto pass = gate.enter();
  if (!parts.fd) throw std::logic_error("sslstream: write on a closed socket_stream");
  if (output_shut) throw std::logic_error("sslstream: write after shutdown(direction::output)");
  try {
    socket_write(parts.fd.get(), in, deadline_after(parts.write_timeout), parts.write_timeout);
  } catch (const socket_error&) {
    if (gate.closing()) io_gate::throw_closed();  // woken by close(), not a peer's reset
    throw;
  }
}

}  // namespace detail

using detail::socket_impl;

socket_stream::socket_stream(std::unique_ptr<socket_impl> impl)
    : duplex_iostream(&impl->buf), impl_(std::move(impl)) {
  exceptions(std::ios::badbit);  // I/O failures reach the caller as the exception itself
}

socket_stream::socket_stream(socket_stream&& o) noexcept
    : duplex_iostream(std::move(o)), impl_(std::move(o.impl_)) {
  set_rdbuf(impl_ ? &impl_->buf : nullptr);
  o.exceptions(std::ios::goodbit);
  o.rdbuf(nullptr);
}

socket_stream& socket_stream::operator=(socket_stream&& o) noexcept {
  if (this != &o) {
    std::iostream::swap(o);
    std::swap(impl_, o.impl_);
    set_rdbuf(impl_ ? &impl_->buf : nullptr);
    o.exceptions(std::ios::goodbit);
    o.rdbuf(o.impl_ ? &o.impl_->buf : nullptr);
    o.close_noexcept();
    o.impl_.reset();  // moved-from: every operation is a logic_error, not the old stream
    o.rdbuf(nullptr);
  }
  return *this;
}

socket_stream::~socket_stream() { close_noexcept(); }

void socket_stream::close_noexcept() noexcept {
  if (!impl_ || !impl_->parts.fd) return;
  // A destructor never waits on the network: one non-blocking send of what was buffered.
  auto pending = impl_->buf.pending_output();
  if (!pending.empty() && !impl_->output_shut)
    (void)::send(impl_->parts.fd.get(), pending.data(), pending.size(),
                 MSG_NOSIGNAL | MSG_DONTWAIT);
  impl_->buf.discard_output();
  detail::close_gracefully(impl_->parts.fd);
}

/// Every operation on a moved-from stream is a logic error, never a null dereference.
static socket_impl& checked(const std::unique_ptr<socket_impl>& p) {
  if (!p) throw std::logic_error("sslstream: use of a moved-from socket_stream");
  return *p;
}

std::string socket_stream::local_host() const { return checked(impl_).parts.local.host(); }
std::uint16_t socket_stream::local_port() const { return checked(impl_).parts.local.port(); }
std::string socket_stream::remote_host() const { return checked(impl_).parts.remote.host(); }
std::uint16_t socket_stream::remote_port() const { return checked(impl_).parts.remote.port(); }
bool socket_stream::is_open() const noexcept { return impl_ && impl_->parts.fd; }
int socket_stream::native_handle() const noexcept { return is_open() ? impl_->parts.fd.get() : -1; }
void socket_stream::set_timeout(std::chrono::milliseconds t) {
  auto& p = checked(impl_).parts;
  p.read_timeout = p.write_timeout = t;
}
void socket_stream::set_read_timeout(std::chrono::milliseconds t) {
  checked(impl_).parts.read_timeout = t;
}
void socket_stream::set_write_timeout(std::chrono::milliseconds t) {
  checked(impl_).parts.write_timeout = t;
}

std::size_t socket_stream::read_some(std::span<std::byte> buffer) {
  return checked(impl_).buf.read_some(buffer);
}
void socket_stream::write_all(std::span<const std::byte> data) {
  checked(impl_).buf.write_all(data);
}

io_result socket_stream::try_read_some(std::span<std::byte> buffer) {
  auto& s = checked(impl_);
  if (s.input_shut) return {0, io_status::eof};
  if (auto n = s.buf.take_buffered(buffer)) return {n, io_status::done};
  auto pass = s.gate.enter();
  if (!s.parts.fd) return {0, io_status::eof};
  for (;;) {
    auto n = ::recv(s.parts.fd.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n > 0) return {static_cast<std::size_t>(n), io_status::done};
    if (n == 0) return {0, buffer.empty() ? io_status::done : io_status::eof};
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {0, io_status::want_read};
    if (errno != EINTR) detail::throw_socket_error(errno, "read");
  }
}

io_result socket_stream::try_write_some(std::span<const std::byte> data) {
  auto& s = checked(impl_);
  auto pass = s.gate.enter();
  if (!s.parts.fd) throw std::logic_error("sslstream: write on a closed socket_stream");
  if (s.output_shut) throw std::logic_error("sslstream: write after shutdown(direction::output)");
  if (s.buf.has_output())
    throw std::logic_error("sslstream: try_write_some with bytes `<<` buffered: flush() first");
  for (;;) {
    auto n = ::send(s.parts.fd.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return {static_cast<std::size_t>(n), io_status::done};
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {0, io_status::want_write};
    if (errno != EINTR) detail::throw_socket_error(errno, "write");
  }
}

void socket_stream::shutdown(direction d) {
  checked(impl_);
  if (!is_open()) throw std::logic_error("sslstream: shutdown on a closed socket_stream");
  if (d == direction::output && !impl_->output_shut) {
    impl_->buf.flush_output();  // unlike Allegro, never drop what the caller wrote
    ::shutdown(impl_->parts.fd.get(), SHUT_WR);
    impl_->output_shut = true;
  } else if (d == direction::input && !impl_->input_shut) {
    impl_->input_shut = true;
    ::shutdown(impl_->parts.fd.get(), SHUT_RD);  // also wakes a reader on another thread
  }
  if (impl_->input_shut && impl_->output_shut) {
    impl_->gate.close(impl_->parts.fd.get());  // a reader on another thread leaves first
    impl_->parts.fd.reset();
  }
}

void socket_stream::close() {
  checked(impl_);
  if (!is_open()) return;
  struct closer {
    socket_impl& s;
    ~closer() {
      s.gate.close(s.parts.fd.get());  // a reader on another thread leaves first
      detail::close_gracefully(s.parts.fd);
    }
  } c{*impl_};
  if (!impl_->output_shut) {
    auto saved = impl_->parts.write_timeout;
    if (saved.count() <= 0) impl_->parts.write_timeout = std::chrono::seconds(10);
    impl_->buf.flush_output();
    impl_->parts.write_timeout = saved;
  }
}

detail::socket_impl& socket_stream::impl_for_handover() {
  checked(impl_);
  if (!is_open()) throw std::logic_error("sslstream: the socket_stream is closed");
  return *impl_;
}

std::ostream& operator<<(std::ostream& os, const socket_stream& s) {
  if (!s.impl_) return os << "#<stream socket (moved from)>";
  const auto& p = s.impl_->parts;
  return os << "#<stream socket " << (p.fd ? "connected" : "closed, but was connected") << " from "
            << p.local.display() << " to " << p.remote.display() << '>';
}

// --- adopting a descriptor made elsewhere ---------------------------------------------------

namespace detail {

void check_stream_socket(int fd, bool listening, const char* what) {
  auto refuse = [&](int err, const std::string& why) {
    throw socket_error(std::error_code(err, std::system_category()), "bad-descriptor",
                       std::string(what) + ": descriptor " + std::to_string(fd) + " " + why +
                           " (it was left open and untouched)");
  };
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) refuse(EBADF, "is not open");
  if (!S_ISSOCK(st.st_mode)) refuse(ENOTSOCK, "is not a socket");
  int type = 0, accepting = 0, family = 0;
  socklen_t len = sizeof type;
  ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
  len = sizeof accepting;
  ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len);
  len = sizeof family;
  ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len);
  if (type != SOCK_STREAM) refuse(EPROTOTYPE, "is not a stream socket");
  if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
    refuse(EAFNOSUPPORT, "is neither TCP nor Unix-domain");
  if (listening && !accepting)
    refuse(EINVAL, "is not listening (adopt_socket takes connected sockets)");
  if (!listening && accepting) refuse(EINVAL, "is listening: use adopt_passive_socket");
}

}  // namespace detail

socket_stream adopt_socket(int fd) {
  using namespace detail;
  check_stream_socket(fd, false, "adopt_socket");
  connection_parts p;
  p.remote.len = sizeof p.remote.addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&p.remote.addr), &p.remote.len) != 0)
    throw socket_error(std::error_code(errno, std::system_category()), "not-connected",
                       "adopt_socket: descriptor " + std::to_string(fd) +
                           " is not connected (it was left open and untouched)");
  set_nonblocking(fd);
  if (p.remote.addr.ss_family != AF_UNIX) {  // TCP_NODELAY (the buffer coalesces); nothing else
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  p.local = local_endpoint(fd);
  p.fd.reset(fd);
  return socket_stream(std::make_unique<socket_impl>(std::move(p)));
}

// --- connecting -----------------------------------------------------------------------------

namespace {

void set_flag(int fd, int level, int opt, bool on) {
  int v = on ? 1 : 0;
  ::setsockopt(fd, level, opt, &v, sizeof v);
}

/// The deadline of one connect attempt when `left` addresses (this one included) remain. An
/// address that drops our SYN (a dead IPv6 route, say) must not spend the whole budget and
/// leave none for the next: each attempt gets an equal share of what remains, but at least
/// 2 s, or all that remains if that is less (as Go's dialer does).
detail::deadline attempt_deadline(const detail::deadline& until, std::size_t left) {
  using namespace std::chrono_literals;
  if (!until || left <= 1) return until;
  auto now = detail::clock::now();
  auto remaining = *until - now;
  auto floor = std::min<detail::clock::duration>(remaining, 2s);
  return now + std::max<detail::clock::duration>(remaining / static_cast<long>(left), floor);
}

std::size_t count(const addrinfo* list) {
  std::size_t n = 0;
  for (; list; list = list->ai_next) ++n;
  return n;
}

}  // namespace

namespace detail {

addrinfo_ptr resolve(const std::string& host, std::uint16_t port, int flags) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  auto service = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    if (rc == EAI_SYSTEM) throw_socket_error(errno, "cannot resolve host '" + host + "'");
    throw socket_error(make_error_code(errc::host_not_found), "host-not-found",
                       "cannot resolve host '" + host + "': " + gai_strerror(rc) +
                           " (check the name, or use an IP address)");
  }
  return addrinfo_ptr(res);
}

endpoint local_endpoint(int fd) {
  endpoint e;
  e.len = sizeof e.addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&e.addr), &e.len);
  return e;
}

void apply_stream_options(int fd, bool nodelay, bool keepalive) {
  set_flag(fd, IPPROTO_TCP, TCP_NODELAY, nodelay);
  set_flag(fd, SOL_SOCKET, SO_KEEPALIVE, keepalive);
}

}  // namespace detail

socket_stream make_socket(const active& o) {
  using namespace detail;
  if (o.remote_host.empty()) throw std::invalid_argument("sslstream: active::remote_host is empty");
  if (o.remote_port == 0) throw std::invalid_argument("sslstream: active::remote_port is 0");
  auto until = deadline_after(o.connect_timeout);
  auto list = resolve(o.remote_host, o.remote_port, 0);
  // The local address to bind first, if one is asked for: resolved once, for every attempt.
  addrinfo_ptr local;
  if (!o.local_host.empty() || o.local_port != 0)
    local = resolve(o.local_host, o.local_port, AI_PASSIVE);
  int last_err = 0;
  std::string last_addr;
  std::size_t left = count(list.get());
  for (auto* ai = list.get(); ai; ai = ai->ai_next, --left) {
    unique_fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
      last_err = errno;
      continue;
    }
    endpoint remote;
    std::memcpy(&remote.addr, ai->ai_addr, ai->ai_addrlen);
    remote.len = ai->ai_addrlen;
    last_addr = remote.host() + " port " + std::to_string(o.remote_port);
    if (local) {
      addrinfo* match = local.get();
      while (match && match->ai_family != ai->ai_family) match = match->ai_next;
      if (!match) {
        last_err = EAFNOSUPPORT;
        continue;
      }
      set_flag(fd.get(), SOL_SOCKET, SO_REUSEADDR, true);
      if (::bind(fd.get(), match->ai_addr, match->ai_addrlen) != 0) {
        throw_socket_error(
            errno, "bind to local " + o.local_host + " port " + std::to_string(o.local_port));
      }
    }
    int rc = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      if (poll_until(fd.get(), POLLOUT, attempt_deadline(until, left)) == 0) {
        if (left > 1 && clock::now() < *until) {
          last_err = ETIMEDOUT;  // silent: try the next address with the time that is left
          continue;
        }
        throw socket_error(
            std::error_code(ETIMEDOUT, std::system_category()), "timeout",
            "connect to " + o.remote_host + " (" + last_addr + ") timed out after " +
                std::to_string(o.connect_timeout.count()) +
                " ms (if the host is only slow, allow it more: active::connect_timeout)");
      }
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err != 0) {
      last_err = err;
      continue;
    }
    apply_stream_options(fd.get(), o.nodelay, o.keepalive);
    connection_parts p;
    p.local = local_endpoint(fd.get());
    p.remote = remote;
    p.fd = std::move(fd);
    p.host_name = o.remote_host;
    return socket_stream(std::make_unique<socket_impl>(std::move(p)));
  }
  throw_socket_error(last_err ? last_err : EHOSTUNREACH,
                     "connect to " + o.remote_host + " port " + std::to_string(o.remote_port) +
                         (last_addr.empty() ? "" : " (last tried " + last_addr + ")"));
}

}  // namespace sslstream
