// Internal: the TLS engine behind an ssl_stream — the SSL*, its socket, and perform(), the one
// place that calls SSL_do_handshake / SSL_read_ex / SSL_write_ex / SSL_shutdown.
//
// Concurrency: OpenSSL forbids concurrent calls on one SSL*, so every call runs under `ssl_mutex`;
// the lock is never held while waiting on the socket, so a reader blocked for input does not
// stop a writer. The handshake runs once, under `handshake_mutex`, before either proceeds.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>
#include <sslstream/ssl_stream.hpp>
#include <vector>

#include "context_state.hpp"
#include "io_gate.hpp"
#include "socket_impl.hpp"
#include "stream_buffer.hpp"

namespace sslstream::detail {

/// OpenSSL's verify code with its text ("ok" for X509_V_OK), as verify_result() reports it.
verify_result_t verify_result_of(long code);

class tls_impl final : public transport {
 public:
  tls_impl(ssl_context ctx, connection_parts parts, std::string preread);
  ~tls_impl() override;

  std::size_t read_some(std::span<std::byte> out) override;
  std::vector<std::byte> export_keying_material(std::string_view label,
                                                std::span<const std::byte> context,
                                                std::size_t length);
  void write_all(std::span<const std::byte> in) override;
  /// With `restart`, the deadline moves to `restart` from now whenever a record goes out.
  void write_until(std::span<const std::byte> in, deadline until,
                   std::chrono::milliseconds restart = {});

  bool input_pending();
  void handshake();
  // Non-blocking: one attempt each, never waiting (libtls's TLS_WANT_POLLIN model).
  io_result try_handshake();
  io_result try_read_some(std::span<std::byte> out);
  io_result try_write_some(std::span<const std::byte> in);
  io_result try_shutdown();
  /// Runs `f(SSL*)` under the lock every OpenSSL call takes: an accessor must not read the
  /// connection while a reader's SSL_read replaces its session (a TLS 1.3 ticket) under it.
  template <class F>
  auto locked(F&& f) const {
    std::lock_guard lk(ssl_mutex_);
    return f(ssl.get());
  }
  /// Keeps the first exception a callback caught (OpenSSL's C frames must never see one): the
  /// SSL call that ran the callback then fails, and the stream operation rethrows it.
  void callback_failed(std::exception_ptr e) noexcept {
    if (!callback_error_) callback_error_ = std::move(e);
  }
  bool handshake_done() const noexcept { return handshake_done_.load(std::memory_order_acquire); }
  /// Flushes and sends close_notify (once).
  void shutdown_output(const deadline& until);
  /// Flush, close_notify, close the descriptor; bounded by `until`. Throws if data was lost.
  void close(const deadline& until);
  /// Client, TLS 1.3: processes the session tickets that have already arrived, never waiting.
  void take_arrived_tickets() noexcept;
  /// The destructor's close: no waiting, no throwing.
  void close_noexcept() noexcept;

  static tls_impl* of(const SSL* ssl);
  /// The stream whose handshake is verifying in `store`; nullptr outside a handshake.
  static tls_impl* of(X509_STORE_CTX* store);
  static int verify_cb(int ok, X509_STORE_CTX* store);
  /// Replaces OpenSSL's chain verification on contexts with pins (accepts exactly the pinned
  /// leaves) or a verify_callback (OpenSSL's checks, then the caller's verdict).
  static int cert_verify_cb(X509_STORE_CTX* store, void* context_state);
  /// Client: notes that the server asked for a certificate (for the error message).
  static int cert_requested_cb(SSL* ssl, void*);

  ssl_context ctx;
  connection_parts parts;
  socket_bio_state bio;
  ssl_ptr ssl;
  stream_buffer buf{*this};
  bool server;
  std::string session_key;  // client: where this server's sessions are cached
  io_gate gate;
  std::atomic<bool> input_shut{false};  // set by shutdown(input), maybe from another thread
  bool output_shut = false;
  bool verify_optional = false;  // client verify_mode::optional: record failures, don't fail

  bool cert_requested = false;  // client: the server asked for a certificate (cert_cb)

  // The first verification failure, recorded by verify_cb for the error message.
  long failed_code = 0;
  int failed_depth = -1;
  std::string failed_subject;
  std::string failed_fingerprint;
  bool failed_without_san = false;  // the failed certificate has no subjectAltName at all
  enum class rejecter { none, pin, callback } rejected_by = rejecter::none;
  std::string verify_name;             // client: the name checked against the certificate
  std::atomic<bool> truncated{false};  // allow_truncation: the peer ended without close_notify
  /// Records the store's error, depth and certificate, unless a failure is recorded already.
  void record_failure(X509_STORE_CTX* store);

 private:
  enum class op_kind { handshake, read, write, shutdown };
  /// One call into OpenSSL under the lock: > 0 success, 0 a clean end of stream, or -1 with
  /// `want` set to POLLIN / POLLOUT. Errors throw (and stick).
  template <class Op>
  int attempt(Op op, op_kind kind, int& want);
  /// attempt() until done, waiting on the socket up to `until` (inside the io_gate).
  template <class Op>
  int perform(Op op, const deadline& until, op_kind kind);
  void finish_handshake();
  /// The error of a handshake past ssl_options::handshake_timeout (blocking or not).
  std::exception_ptr handshake_timed_out() const;
  void check_resumed_session();
  [[noreturn]] void fail(int ssl_error, op_kind kind);
  [[noreturn]] void fail_handshake_timeout();

  mutable std::mutex ssl_mutex_;
  std::mutex handshake_mutex_;
  std::atomic<bool> handshake_done_{false};
  deadline handshake_limit_;      // ssl_options::handshake_timeout's deadline, during the handshake
  deadline try_handshake_limit_;  // the same for try_handshake, from its first call
  std::uint64_t recvs_at_want_read_ = ~std::uint64_t{0};  // bio.recvs when a read wanted more
  std::exception_ptr fatal_;           // the first fatal error sticks (guarded by ssl_mutex_)
  std::exception_ptr callback_error_;  // set by callbacks, inside an SSL call (ssl_mutex_ held)
  bool close_notify_sent_ = false;
  // The last read ended in an exception (a timeout) and none has succeeded since: a stream
  // dropped in that state was abandoned, so its destructor must not send close_notify, which
  // would tell the peer that everything was said (guarded by ssl_mutex_).
  bool read_gave_up_ = false;
};

}  // namespace sslstream::detail
