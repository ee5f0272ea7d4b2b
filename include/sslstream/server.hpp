// sslstream/server.hpp — the server engine: many TLS connections on a few threads.
//
//   auto listener = sslstream::make_socket(sslstream::passive{});
//   auto ctx = sslstream::make_ssl_server_context(options);
//   // The tutorial's style of code, on a bounded pool of worker threads:
//   sslstream::server srv(std::move(listener), ctx, [](sslstream::ssl_stream& s) {
//     std::string line;
//     while (std::getline(s, line)) s << line << std::endl;
//   });
//   srv.run();  // until stop()
//
//   // Or coroutines: an idle connection takes no thread at all.
//   sslstream::server srv(std::move(listener), ctx,
//                         [](sslstream::async_stream& s) -> sslstream::task<> {
//                           std::array<std::byte, 4096> b;
//                           while (auto n = co_await s.read_some(b))
//                             co_await s.write_all(std::span(b).first(n));
//                         });
//
// Event-loop threads (one per core by default) accept and run every handshake without
// blocking, so a client that stalls takes no thread and is dropped at handshake_timeout. A
// blocking handler then runs on a worker (at most max_workers threads); a coroutine handler
// runs on its connection's event loop. Past max_connections the server stops accepting (new
// clients wait in the listen backlog) until a connection ends, or until its oldest handshake
// has lasted a second: that one is then closed to take a new client. A peer that stops reading is
// dropped at write_timeout, an idle one at idle_timeout. Failing to start a thread never wedges
// or ends the server: it serves with the threads it has and tries again later.
#pragma once

#include <array>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <sslstream/socket.hpp>
#include <sslstream/ssl_context.hpp>
#include <sslstream/ssl_stream.hpp>
#include <sslstream/task.hpp>
#include <string>

namespace sslstream {

/// A handshake the engine gave up on: who, and why.
struct handshake_failure {
  std::string peer;        ///< the client's address and port, "192.0.2.7:50432" ("[::1]:50432")
  std::string reason;      ///< what failed, as the library's errors say it
  bool timed_out = false;  ///< dropped at handshake_timeout (the reason says so too)
};

struct server_options {
  unsigned threads = 0;  ///< event-loop threads; 0 = one per core
  std::size_t max_connections = 10000;
  std::size_t max_workers = 64;  ///< threads that run blocking handlers
  /// For the engine's connections this, not ssl_options::handshake_timeout, drops a stalled
  /// handshake.
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds idle_timeout{0};  ///< a read waiting this long ends it; 0 = none
  std::chrono::milliseconds write_timeout{30000};
  /// Called on an event loop for each handshake that fails or times out, so that a log can
  /// say which client and why (stats() only counts them). Keep it short: the loop waits for
  /// it. What it throws is ignored. A peer decides how often it is called: rate-limit output.
  std::function<void(const handshake_failure&)> on_handshake_failure;
};

struct server_stats {
  std::uint64_t accepted = 0;
  std::uint64_t handshakes = 0;
  std::uint64_t handshake_failures = 0;
  std::uint64_t active = 0;     ///< connections open now
  std::uint64_t rejected = 0;   ///< accepts that failed (descriptors exhausted, ...)
  std::uint64_t timed_out = 0;  ///< handshake, idle or write timeouts
  /// Handshakes closed, when the server was full, to make room for a new client: the oldest
  /// one, once it has lasted a second (a stalled ClientHello, typically).
  std::uint64_t evicted = 0;
};

namespace detail {
struct engine_connection;
class engine;
class event_loop;
}  // namespace detail

/// A connection as a coroutine handler sees it. Each co_await suspends the handler (and takes
/// no thread) until the socket is ready; errors throw from the co_await, as the blocking calls
/// do; a timeout is a socket_error "timeout".
class async_stream {
 public:
  class [[nodiscard]] read_op;
  class [[nodiscard]] write_op;
  class [[nodiscard]] close_op;

  /// co_await: at least one byte, or 0 at the peer's close_notify.
  read_op read_some(std::span<std::byte> buffer);
  /// co_await: every byte sent, or an exception.
  write_op write_all(std::span<const std::byte> data);
  /// co_await: close_notify sent (the connection is closed when the handler returns).
  close_op close();

  std::optional<x509_certificate> peer_certificate() { return stream().peer_certificate(); }
  std::string server_name() { return stream().server_name(); }
  std::string alpn_protocol() { return stream().alpn_protocol(); }
  std::string protocol_version() { return stream().protocol_version(); }
  std::string cipher() { return stream().cipher(); }
  bool session_reused() { return stream().session_reused(); }
  std::string remote_host() const;
  std::uint16_t remote_port() const;
  /// The underlying stream, for the other accessors (export_keying_material, session(), ...;
  /// the handshake is done before the handler starts, so they do not block). Never for
  /// blocking I/O on the loop.
  ssl_stream& stream() noexcept;

  explicit async_stream(detail::engine_connection& c) noexcept : c_(c) {}

 private:
  friend class read_op;
  friend class write_op;
  friend class close_op;
  detail::engine_connection& c_;
};

/// The awaitable of one pending operation: tried at once, then again each time the socket is
/// ready, on the connection's event loop.
class async_op_base {
 public:
  bool await_ready();
  void await_suspend(std::coroutine_handle<> h);

 protected:
  explicit async_op_base(detail::engine_connection& c) noexcept : c_(c) {}
  /// One non-blocking attempt: true when finished (or failed: throw), false to wait.
  virtual bool attempt() = 0;
  void rethrow_if_failed();
  detail::engine_connection& c_;
  short want_ = 0;  // POLLIN / POLLOUT while waiting
  bool writing_ = false;

 private:
  friend class detail::event_loop;
  bool run_attempt();
  void fail_with(std::exception_ptr e) noexcept { error_ = std::move(e); }
  std::exception_ptr error_;
};

class async_stream::read_op : public async_op_base {
 public:
  read_op(detail::engine_connection& c, std::span<std::byte> b) noexcept
      : async_op_base(c), buf_(b) {}
  std::size_t await_resume() {
    rethrow_if_failed();
    return got_;
  }

 private:
  bool attempt() override;
  std::span<std::byte> buf_;
  std::size_t got_ = 0;
};

class async_stream::write_op : public async_op_base {
 public:
  write_op(detail::engine_connection& c, std::span<const std::byte> d) noexcept
      : async_op_base(c), data_(d) {
    writing_ = true;
  }
  void await_resume() { rethrow_if_failed(); }

 private:
  bool attempt() override;
  std::span<const std::byte> data_;
};

class async_stream::close_op : public async_op_base {
 public:
  explicit close_op(detail::engine_connection& c) noexcept : async_op_base(c) { writing_ = true; }
  void await_resume() { rethrow_if_failed(); }

 private:
  bool attempt() override;
};

class server {
 public:
  using blocking_handler = std::function<void(ssl_stream&)>;
  using coroutine_handler = std::function<task<>(async_stream&)>;

  server(passive_socket listener, ssl_context context, blocking_handler handler,
         server_options options = {});
  server(passive_socket listener, ssl_context context, coroutine_handler handler,
         server_options options = {});
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  /// Stops (as stop()) and waits for every thread.
  ~server();

  /// Serves on this thread (and the other event loops on their own) until stop().
  void run();
  /// Serves on background threads; returns at once.
  void start();
  /// Stops accepting and closes every connection: blocking handlers see their input end,
  /// coroutine handlers are destroyed. Returns once all of them are gone.
  void stop();
  /// Stops accepting, lets the connections finish by themselves within `drain`, then stop().
  void stop(std::chrono::milliseconds drain);
  /// Stops accepting and returns once no event loop is accepting: a client that connects from
  /// then on waits in the listen backlog (refused when the server is destroyed). Open
  /// connections go on. For a drain whose end is decided elsewhere, e.g. by a second signal.
  void stop_accepting();
  /// New connections use `context`; existing ones keep theirs.
  void reload(ssl_context context);
  std::uint16_t local_port() const noexcept;
  server_stats stats() const noexcept;

 private:
  std::unique_ptr<detail::engine> e_;
};

}  // namespace sslstream
