// Internal: the state behind a socket_stream, and the plain-TCP transport under its buffer.
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "fd.hpp"
#include "io_gate.hpp"
#include "stream_buffer.hpp"

namespace sslstream::detail {

/// A socket address with its length, and how to print it.
struct endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;

  std::string host() const;  ///< numeric ("127.0.0.1", "::1"); IPv4-mapped shown as IPv4
  std::uint16_t port() const;
  bool is_loopback() const;
  std::string display() const;  ///< Allegro's "localhost/54505" form
};

/// What a connected socket is, apart from its buffer: handed over whole to TLS.
struct connection_parts {
  unique_fd fd;
  endpoint local;
  endpoint remote;
  std::string host_name;  ///< the name make_socket connected to (empty for accepted sockets)
  std::chrono::milliseconds read_timeout{0};   ///< each read's wait; 0 = none
  std::chrono::milliseconds write_timeout{0};  ///< each write's wait (and close's flush)
};

/// recv/send on a non-blocking descriptor, waiting with poll up to the timeout.
std::size_t socket_read(int fd, std::span<std::byte> out, const deadline& until);
/// Writes all of `in` by `until`; with `restart`, the deadline moves to `restart` from now
/// whenever bytes go out (a write limit for a peer that stops reading, not a slow one).
void socket_write(int fd, std::span<const std::byte> in, deadline until,
                  std::chrono::milliseconds restart = {});

struct addrinfo_deleter {
  void operator()(addrinfo* a) const noexcept { freeaddrinfo(a); }
};
using addrinfo_ptr = std::unique_ptr<addrinfo, addrinfo_deleter>;

/// getaddrinfo for TCP; throws socket_error "host-not-found" with the resolver's reason.
addrinfo_ptr resolve(const std::string& host, std::uint16_t port, int flags);
endpoint local_endpoint(int fd);
/// Throws socket_error unless `fd` is a TCP or Unix-domain stream socket, listening or not as
/// asked; never touches it.
void check_stream_socket(int fd, bool listening, const char* what);
void apply_stream_options(int fd, bool nodelay, bool keepalive);

class socket_impl final : public transport {
 public:
  explicit socket_impl(connection_parts p) : parts(std::move(p)) {}

  std::size_t read_some(std::span<std::byte> out) override;
  void write_all(std::span<const std::byte> in) override;

  connection_parts parts;
  stream_buffer buf{*this};
  io_gate gate;
  std::atomic<bool> input_shut{false};  // set by shutdown(input), maybe from another thread
  bool output_shut = false;
};

}  // namespace sslstream::detail
