// sslstream/ssl_stream.hpp — a TLS connection as a std::iostream (Allegro's
// make-ssl-server-stream and make-ssl-client-stream).
//
//   sslstream::active to;
//   to.remote_host = "example.com";
//   to.remote_port = 443;
//   auto sock = sslstream::make_socket(to);
//   auto tls = sslstream::make_ssl_client_stream(std::move(sock), sslstream::ssl_options{});
//   tls << "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n" << std::flush;  // handshake happens here
//   std::string line;
//   std::getline(tls, line);
//
// The handshake is deferred to the first read or write (or to do_handshake()), exactly as in the
// Allegro tutorial. The socket is consumed: closing the SSL stream closes the descriptor. Bytes
// the socket_stream had already buffered (STARTTLS) are handed to TLS, not lost.
//
// Errors: handshake failures throw tls_error (verify_error when the peer's certificate did not
// verify), socket failures socket_error; both come out of the stream operation itself. A peer's
// close_notify is a clean EOF; a connection that ends without one throws tls_error "truncated".
// The first fatal error sticks: later I/O throws it again.
//
// close() flushes, sends close_notify and closes the descriptor, bounded by the timeout (10 s
// when none is set). The destructor never throws and never waits on the network: it sends what
// it can without blocking and closes. Call close() to be sure buffered data went out.
//
// Threads: one thread may read (read_some) while another writes (write_all) the same stream;
// sslstream serialises the OpenSSL calls, never holding a lock while waiting on the socket.
#pragma once

#include <chrono>
#include <iosfwd>
#include <istream>
#include <memory>
#include <optional>
#include <span>
#include <sslstream/socket.hpp>
#include <sslstream/ssl_context.hpp>
#include <sslstream/x509.hpp>
#include <string>

namespace sslstream {

namespace detail {
class tls_impl;
}

class ssl_stream : public duplex_iostream {
 public:
  ssl_stream(ssl_stream&& other) noexcept;
  ssl_stream& operator=(ssl_stream&& other) noexcept;
  ~ssl_stream() override;

  /// Runs the handshake now instead of at the first I/O. Throws tls_error / verify_error.
  void do_handshake();
  bool is_server() const noexcept;

  // After the handshake (each of these runs it first if needed, like Allegro's
  // get-ssl-peer-certificate):
  std::optional<x509_certificate> peer_certificate();
  std::vector<x509_certificate> peer_chain();
  verify_result_t verify_result();
  std::string protocol_version();  ///< "TLSv1.3"
  std::string cipher();            ///< "TLS_AES_256_GCM_SHA384"
  std::string alpn_protocol();     ///< "" when none was agreed
  bool session_reused();
  /// Client: the name sent as SNI (empty for an IP address); server: the SNI the client sent.
  std::string server_name();
  /// The key exchange's group as OpenSSL names it: "x25519", "secp256r1", "ffdhe2048"; "" when
  /// none was negotiated (a resumed TLS 1.2 session, RSA key transport, a group without a name).
  std::string key_exchange_group();
  /// Client: whether the server asked for a certificate (a CertificateRequest arrived), whether
  /// or not this side had one to send. Always false on a server.
  bool client_certificate_requested();
  /// Client with ssl_options::request_ocsp: the status the server stapled for its certificate:
  /// "good", "revoked", "unknown" (the responder does not know it), "invalid" (not a successful
  /// OCSP response, no entry for this certificate, or outside its validity period), or "none"
  /// (nothing stapled, or not asked for). The responder's signature is not checked here: this
  /// reports what the server sent, it does not replace verification.
  std::string ocsp_status();

  /// Sends close_notify: the peer reads a clean EOF; this side may still read (TLS half close).
  /// input: further reads return EOF.
  void shutdown(direction d);
  void close();
  bool is_open() const noexcept;
  /// Both directions; set_read_timeout / set_write_timeout set one. A read that timed out
  /// consumed nothing and may be retried (after clear() when it came through `>>`). A write
  /// times out when the peer has taken nothing for the write limit (it restarts whenever a
  /// record goes out: a slow but steady reader is never cut off). A write or handshake that
  /// timed out may have sent part of a record, so it sticks: the stream is broken. The handshake
  /// waits as a read does, and is bounded as a whole by ssl_options::handshake_timeout.
  void set_timeout(std::chrono::milliseconds t);
  void set_read_timeout(std::chrono::milliseconds t);
  void set_write_timeout(std::chrono::milliseconds t);

  /// RFC 5705 / RFC 8446 §7.5 keying material: the same bytes on both ends of this connection,
  /// bound to `label` and `context` (an empty context is "no context", as `openssl s_client
  /// -keymatexport` and `gnutls-cli --keymatexport` use). Handshakes first.
  std::vector<std::byte> export_keying_material(std::string_view label,
                                                std::span<const std::byte> context,
                                                std::size_t length);
  /// With ssl_options::allow_truncation: whether the peer ended without close_notify.
  bool truncated() const noexcept;
  /// The negotiated session in PEM ("SSL SESSION PARAMETERS", what `openssl s_client
  /// -sess_out` writes), for ssl_options::session in a later client; empty when there is none
  /// to resume (TLS 1.3: the server's ticket arrives after the handshake, with the first read).
  std::string session();

  std::size_t read_some(std::span<std::byte> buffer);
  /// Sends everything before it returns: one TLS record (at least) and one send() per call.
  /// For many small pieces use `<<` / write() and flush(), which gather them into full
  /// records: bench/small_writes measures 1 KiB pieces through write_all at about a third of
  /// whole-record throughput, through the iostream at the same as whole records.
  void write_all(std::span<const std::byte> data);

  // Non-blocking use, from any event loop (libtls's TLS_WANT_POLLIN model): each never blocks.
  // want_read / want_write: wait until native_handle() is readable / writable, then call the
  // same function again (a write with the same bytes). eof only after the peer's close_notify;
  // errors throw as the blocking calls do. Check input_pending() before waiting to read. Do
  // not mix with `<<` (try_write_some throws std::logic_error while `<<` has bytes buffered:
  // flush() first).
  io_result try_handshake();
  io_result try_read_some(std::span<std::byte> buffer);
  io_result try_write_some(std::span<const std::byte> data);
  /// Non-blocking shutdown(direction::output): sends close_notify (done), or wants to wait.
  io_result try_shutdown();
  /// True when a read can make progress without the socket becoming readable: bytes already
  /// buffered by the stream or by OpenSSL (read ahead). An event loop must check this before
  /// it waits on native_handle(), or it may wait for data that has already arrived.
  bool input_pending();

  std::string local_host() const;
  std::uint16_t local_port() const;
  std::string remote_host() const;
  std::uint16_t remote_port() const;
  int native_handle() const noexcept;  ///< the descriptor
  void* native_ssl() const noexcept;   ///< the OpenSSL SSL*

  explicit ssl_stream(std::unique_ptr<detail::tls_impl> impl);

 private:
  std::unique_ptr<detail::tls_impl> impl_;
  friend std::ostream& operator<<(std::ostream&, const ssl_stream&);
};

/// The socket is consumed. The options variants build a private context for this one stream;
/// share an ssl_context instead when making many streams (it holds the session cache).
ssl_stream make_ssl_server_stream(socket_stream&& socket, const ssl_options& options);
ssl_stream make_ssl_server_stream(socket_stream&& socket, const ssl_context& context);
ssl_stream make_ssl_client_stream(socket_stream&& socket, const ssl_options& options);
ssl_stream make_ssl_client_stream(socket_stream&& socket, const ssl_context& context);

/// Which TLS version a server speaks that refused every version this library allows: a
/// second handshake on `socket` (a fresh connection to that server) offering only TLS 1.0 and
/// 1.1 at OpenSSL security level 0, which verifies nothing and is dropped, without close_notify,
/// as soon as OpenSSL has read the server's hello (often that is the whole handshake). It sends
/// no application data: use it only to say why a connection failed. Returns "TLSv1" or
/// "TLSv1.1", or "" when the server refuses those too or does not answer within `timeout`
/// (0 = no limit). The socket is consumed and closed.
std::string probe_legacy_version(socket_stream&& socket, const std::string& server_name,
                                 std::chrono::milliseconds timeout);

/// #<ssl client stream connected from localhost/54507 to localhost/54505, TLSv1.3
/// TLS_AES_256_GCM_SHA384>
std::ostream& operator<<(std::ostream& os, const ssl_stream& s);

}  // namespace sslstream
