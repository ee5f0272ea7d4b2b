// sslstream/socket.hpp — TCP sockets as C++ streams (Allegro's make-socket, accept-connection).
//
//   auto listener = sslstream::make_socket(sslstream::passive{});       // OS picks the port
//   std::cout << listener << '\n';  // #<passive socket waiting for connection at */54505>
//   sslstream::active to;
//   to.remote_host = "localhost";
//   to.remote_port = listener.local_port();
//   auto client = sslstream::make_socket(to);
//   auto server = listener.accept_connection();
//   client << "hello" << std::flush;
//   std::string word; server >> word;
//
// Defaults: all interfaces, OS-chosen port, SO_REUSEADDR on, backlog 4096 (the kernel caps it
// at net.core.somaxconn), TCP_NODELAY on
// (the stream buffer already coalesces writes), keepalive off, connect timeout 30 s, no
// read/write timeout. Descriptors are non-blocking and close-on-exec underneath; every wait is a
// poll with a deadline. SIGPIPE is never raised (MSG_NOSIGNAL on every send).
//
// Errors: sslstream::socket_error (errno + identifier such as "connection-refused",
// "address-in-use", "host-not-found", "timeout"). A stream's I/O failure is thrown from the
// stream operation itself, never left as a silent failbit; a clean end of stream is EOF.
//
// Threads: distinct sockets may be used from distinct threads. On one socket_stream, one thread
// may call read_some while another calls write_all; anything else needs external locking.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <istream>
#include <memory>
#include <optional>
#include <span>
#include <sslstream/duplex_iostream.hpp>
#include <sslstream/error.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sslstream {

/// Which half of a connection shutdown() closes.
enum class direction { input, output };

/// What a non-blocking call (try_read_some, try_write_some, try_handshake) did: `done` (with
/// `bytes`), or it needs the descriptor to become readable (`want_read`) or writable
/// (`want_write`) first, after which the same call is made again (a write with the same
/// bytes); `eof` is a clean end of stream (for TLS: the peer's close_notify).
enum class io_status { done, want_read, want_write, eof };
struct io_result {
  std::size_t bytes = 0;
  io_status status = io_status::done;
};

/// Options of a listening socket (Allegro make-socket :connect :passive).
struct passive {
  std::string local_host;        ///< interface address or name; empty = all (IPv6 and IPv4)
  std::uint16_t local_port = 0;  ///< 0 = chosen by the OS
  int backlog = 4096;            ///< listen queue length (the kernel caps it at somaxconn)
  bool reuse_address = true;     ///< SO_REUSEADDR, so a restarted server can bind at once
  bool nodelay = true;           ///< TCP_NODELAY on accepted connections
  bool keepalive = false;        ///< SO_KEEPALIVE on accepted connections
};

/// Options of an outgoing connection (Allegro make-socket :remote-host ...).
struct active {
  std::string remote_host;  ///< name or address; every address it resolves to is tried
  std::uint16_t remote_port = 0;
  std::string local_host;        ///< bind to this local address first (empty = any)
  std::uint16_t local_port = 0;  ///< bind to this local port first (0 = any)
  /// For all addresses together; 0 = none. A silent address may take only its share of what
  /// remains (at least 2 s), so the next one is still tried.
  std::chrono::milliseconds connect_timeout{30000};
  bool nodelay = true;
  bool keepalive = false;
};

namespace detail {
class socket_impl;
}  // namespace detail

/// A connected TCP stream (IPv4 or IPv6). Move-only; closes its descriptor when destroyed.
class socket_stream : public duplex_iostream {
 public:
  socket_stream(socket_stream&& other) noexcept;
  socket_stream& operator=(socket_stream&& other) noexcept;
  ~socket_stream() override;

  std::string local_host() const;  ///< numeric address, e.g. "127.0.0.1" or "::1"
  std::uint16_t local_port() const;
  /// Numeric address of the peer ("" on a Unix-domain socket, whose remote_port() is 0).
  std::string remote_host() const;
  std::uint16_t remote_port() const;

  /// Half close. output: flushes what is buffered, then sends FIN (the peer reads EOF);
  /// input: further reads return EOF, and a read blocked on another thread returns 0 at once.
  /// Both halves shut = closed. close() from another thread makes a blocked read or write
  /// throw socket_error "closed" at once; the descriptor is closed only after it has left.
  void shutdown(direction d);
  /// Flushes buffered output (bounded by the timeout) and closes the descriptor. Idempotent.
  void close();
  bool is_open() const noexcept;
  /// Limit for each read and write (and for close's flush); 0 = wait without limit. Both
  /// directions; set_read_timeout / set_write_timeout set one. A read that timed out consumed
  /// nothing: read again (after clear() when it came through `>>`). A write times out when
  /// the peer has taken none of its bytes for the write limit (it restarts whenever bytes go
  /// out: a slow but steady reader is never cut off); it may have sent part of its bytes.
  void set_timeout(std::chrono::milliseconds t);
  void set_read_timeout(std::chrono::milliseconds t);
  void set_write_timeout(std::chrono::milliseconds t);

  /// Reads at least one byte, waiting for it; returns 0 only at a clean end of stream.
  std::size_t read_some(std::span<std::byte> buffer);
  /// Writes everything (after whatever the stream buffered), or throws.
  void write_all(std::span<const std::byte> data);
  /// Non-blocking: what is there now (buffered bytes first), or want_read, or eof.
  io_result try_read_some(std::span<std::byte> buffer);
  /// Non-blocking: as much as the socket takes now (at least one byte), or want_write.
  io_result try_write_some(std::span<const std::byte> data);

  int native_handle() const noexcept;  ///< the descriptor, or -1 once closed

  /// Internal: used by make_socket, accept_connection and the SSL stream factories.
  explicit socket_stream(std::unique_ptr<detail::socket_impl> impl);
  detail::socket_impl& impl_for_handover();

 private:
  void close_noexcept() noexcept;
  std::unique_ptr<detail::socket_impl> impl_;
  friend std::ostream& operator<<(std::ostream&, const socket_stream&);
};

/// A listening TCP socket. Move-only; not a stream (Allegro: "you can't read from it").
class passive_socket {
 public:
  passive_socket(passive_socket&&) noexcept;
  passive_socket& operator=(passive_socket&&) noexcept;
  ~passive_socket();

  /// Blocks until a connection arrives.
  socket_stream accept_connection();
  /// Waits at most `wait` (0 = just check, Allegro's :wait nil); nullopt if none arrived.
  std::optional<socket_stream> accept_connection(std::chrono::milliseconds wait);

  std::uint16_t local_port() const noexcept;
  std::string local_host() const;  ///< "*" when listening on all interfaces
  void close() noexcept;
  bool is_open() const noexcept;
  int native_handle() const noexcept;

  struct state;
  explicit passive_socket(std::unique_ptr<state> s);

 private:
  std::unique_ptr<state> s_;
  friend std::ostream& operator<<(std::ostream&, const passive_socket&);
};

/// Takes ownership of a connected stream socket made elsewhere: TCP, or Unix-domain (a
/// socketpair(), an inherited descriptor, a connection another library made). Anything else
/// (not a socket, not a stream, listening, not connected) throws socket_error and leaves the
/// descriptor open and untouched. The descriptor is made non-blocking and close-on-exec.
socket_stream adopt_socket(int fd);
/// Takes ownership of a listening stream socket (systemd-style socket activation); anything
/// else throws socket_error and leaves the descriptor untouched.
passive_socket adopt_passive_socket(int fd);

/// Allegro make-socket :connect :passive. Throws socket_error ("address-in-use", ...).
passive_socket make_socket(const passive& options);
/// Allegro make-socket :remote-host. Tries each address the name resolves to, IPv6 and IPv4,
/// within connect_timeout. Throws socket_error ("connection-refused", "host-not-found", ...).
socket_stream make_socket(const active& options);

/// #<passive socket waiting for connection at */54505>
std::ostream& operator<<(std::ostream& os, const passive_socket& s);
/// #<stream socket connected from localhost/54507 to localhost/54505>
std::ostream& operator<<(std::ostream& os, const socket_stream& s);

// Host naming (Allegro lookup-hostname, ipaddr-to-dotted, dotted-to-ipaddr, ipaddr-to-hostname).

/// The first address `host` resolves to (IPv4 preferred, as Allegro's default), as text.
/// A dotted or IPv6 address is returned as it is. Throws socket_error "host-not-found".
std::string lookup_hostname(const std::string& host);
/// Every address `host` resolves to, IPv6 first, without duplicates.
std::vector<std::string> lookup_hostname_all(const std::string& host);
/// 0x7f000001 -> "127.0.0.1".
std::string ipaddr_to_dotted(std::uint32_t address);
/// "127.0.0.1" -> 0x7f000001. Throws std::invalid_argument for anything but a dotted quad.
std::uint32_t dotted_to_ipaddr(std::string_view dotted);
/// True for "a.b.c.d" and IPv6 literal addresses.
bool is_ip_address(std::string_view text);
/// Reverse lookup of an address ("127.0.0.1" -> "localhost"); the address itself if none.
std::string ipaddr_to_hostname(const std::string& address);

}  // namespace sslstream
