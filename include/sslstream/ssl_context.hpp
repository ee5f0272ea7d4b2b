// sslstream/ssl_context.hpp — TLS settings (Allegro's make-ssl-server-context and
// make-ssl-client-context keywords) and the shared context built from them.
//
//   sslstream::ssl_options o;
//   o.certificate = "examples/ssl/server.pem";      // certificate followed by its key
//   auto ctx = sslstream::make_ssl_server_context(o);  // build once, share everywhere
//
// Several certificates on one server: ssl_options::more_certificates (by SNI, then key type).
//
// Defaults — secure by default, unlike Allegro, which verifies nothing unless asked:
//   - TLS 1.2 and 1.3 only; TLS 1.2 limited to forward-secret AEAD suites (ECDHE/DHE with
//     AES-GCM or ChaCha20-Poly1305); OpenSSL's TLS 1.3 suites (all AEAD); no compression, no
//     renegotiation.
//   - A client verifies the server's chain against the system trust store (or ca_file /
//     ca_directory when given) and checks server_name (default: the host the socket connected
//     to) against the certificate; verify_mode::none turns both off.
//   - A server asks for no client certificate unless `verify` says so, and then it must be told
//     which CAs it trusts for them (ca_file, ca_directory or ca_pem): it never trusts the
//     system store for clients, which would accept any publicly issued certificate. Its own
//     certificate's dates are not checked: an expired certificate still serves, as the
//     tutorial says.
//   - Every handshake is bounded by handshake_timeout (30 s).
//   - max_depth 100 (OpenSSL's), prefer_server_cipher_order true, session tickets on: a server
//     sends one TLS 1.3 ticket per handshake, keeps no session cache, and encrypts tickets with
//     a random key replaced every ticket_lifetime (2 h), or with ticket_key_file's keys.
//
// Errors: building a context throws config_error naming the file or option at fault, so no
// connection is ever attempted with a half-made context.
// Threads: an ssl_context is immutable once built and may be shared by any number of streams
// and threads; copying it is cheap (a shared handle).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <sslstream/error.hpp>
#include <sslstream/x509.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sslstream {

/// OpenSSL's verification outcome: {0, "ok"} when verified (or when nothing was verified: check
/// peer_certificate() too, as Allegro's get-ssl-verify-result warns).
struct verify_result_t {
  long code = 0;
  std::string text = "ok";
};

/// What a verify_callback sees: the peer's certificate, the chain as verified (or as sent,
/// when verification failed), OpenSSL's verdict and the name checked (client) or asked for
/// by SNI (server).
struct verify_info {
  x509_certificate leaf;
  std::vector<x509_certificate> chain;
  verify_result_t result;
  std::string server_name;
};

enum class verify_mode {
  none,      ///< client: no verification at all (insecure); server: ask for no certificate
  optional,  ///< server: ask for a client certificate and verify it if one is sent;
             ///< client: verify, but let the handshake finish; check verify_result() yourself
  required,  ///< verify, and fail the handshake without a valid peer certificate
};

enum class tls_version { tls1_0, tls1_1, tls1_2, tls1_3 };

/// One more certificate for a server (ssl_options::more_certificates): the same four settings as
/// ssl_options' own `certificate`, `key`, `certificate_password` and `certificate_pem`, read and
/// checked the same way when the context is built.
struct certificate_files {
  std::string certificate;      ///< PEM: certificate, then its chain, then optionally its key
  std::string key;              ///< PEM private key; empty = the key is in `certificate`
  std::string password;         ///< password of an encrypted key
  std::string certificate_pem;  ///< PEM text used instead of the `certificate` file
};

struct ssl_options {
  std::string certificate;           ///< PEM: certificate, then its chain, then optionally its key
  std::string key;                   ///< PEM private key; empty = the key is in `certificate`
  std::string certificate_password;  ///< password of an encrypted key
  /// PEM text used instead of the `certificate` file (certificate, chain, optionally the key).
  std::string certificate_pem;
  std::vector<std::string> other_certificates;  ///< PEM files of extra chain certificates
  /// Server: more certificates, as Go's `Certificates` or libtls' `tls_config_add_keypair_file`.
  /// Each handshake serves the certificates whose subjectAltName DNS names match the client's
  /// SNI, case ignored: exactly if any does, else by a wildcard (`*.example.com` covers one
  /// label: `a.example.com`, not `example.com` nor `a.b.example.com`). Among those, OpenSSL
  /// picks the key type the client can verify (its signature_algorithms and, in TLS 1.2, its
  /// suites): an ECDSA and an RSA certificate for one name serve both kinds of client, ECDSA
  /// the ones that can do both. Without SNI, or for a name no certificate has, the server
  /// serves `certificate`, with those of these that have exactly its subjectAltNames (its
  /// other key types). Of two matching certificates with one key type, the first serves
  /// (`certificate`, then this list in order). A client that can verify none of its name's
  /// certificates fails the handshake: it is not served another name's. `other_certificates`
  /// belong to `certificate`; each of these carries its own chain after it.
  ///
  /// Each pair is read and checked when the context is built, as `certificate` is: a missing
  /// file, a wrong password, a key that does not match, a certificate OpenSSL will not serve,
  /// one without a DNS name (no SNI could choose it) or one hidden for all its names behind
  /// earlier certificates of its key type is a config_error naming it. A session resumes only
  /// under a name that gets the certificates it was made with: one made for `a`, offered
  /// under SNI `b`, gets a full handshake and `b`'s certificate (OpenSSL alone would resume it).
  /// A client context refuses this option.
  std::vector<certificate_files> more_certificates;
  tls_version min_version = tls_version::tls1_2;
  tls_version max_version = tls_version::tls1_3;
  std::optional<verify_mode> verify;  ///< unset: client required, server none
  int max_depth = 100;                ///< longest chain accepted
  std::string ca_file;                ///< PEM file of trusted CAs (replaces the system store)
  std::string ca_directory;           ///< OpenSSL hashed directory of trusted CAs
  std::string ca_pem;                 ///< PEM text of trusted CAs, added to ca_file / ca_directory
  std::string ciphers;       ///< OpenSSL cipher list for TLS <= 1.2; empty = the secure default
  std::string ciphersuites;  ///< TLS 1.3 suites, e.g. "TLS_AES_128_GCM_SHA256"; empty = OpenSSL's
  bool crl_check = false;    ///< check the peer's certificate against the CRLs
  std::string crl_file;      ///< PEM file of CRLs (used when crl_check is set)
  bool prefer_server_cipher_order = true;
  /// Client: SNI and the name verified (default: the host the socket connected to; a
  /// Unix-domain or adopted connection has none, so a verifying client must set this or pins).
  std::string server_name;
  std::vector<std::string> alpn;  ///< ALPN protocols, most preferred first
  /// SHA-256 fingerprints of the peer certificates to accept, as fingerprint_sha256() and
  /// `sslstream info` print them ("sha256:" prefix, colons and case ignored). When set, they
  /// replace verification: the peer must present one of these certificates, whatever its
  /// issuer, names or dates, or the handshake fails before any data crosses. A server with
  /// pins requires a client certificate.
  std::vector<std::string> pinned_sha256;
  /// Called with each TLS secret line in the NSS key log format (SSLKEYLOGFILE), for debugging
  /// with Wireshark. Anyone who sees these lines can decrypt the connection.
  std::function<void(std::string_view line)> keylog;
  /// Bounds the whole handshake of every stream made from these options or their context,
  /// whatever the stream's own timeout (0 = no bound). On sslstream::server the engine's
  /// server_options::handshake_timeout governs its connections. A server must not wait forever for
  /// a client that stops mid-handshake, so there is one by default.
  std::chrono::milliseconds handshake_timeout{30000};
  /// Called once per handshake after OpenSSL's checks (never with verify_mode::none), like Go's
  /// VerifyConnection: return false to fail the handshake (the peer gets a bad_certificate
  /// alert, the caller a verify_error naming this callback), true to accept, even when
  /// `result` is a failure. An exception fails the handshake and comes out of the stream
  /// operation. It runs inside the handshake: keep it quick and do not use the stream in it.
  std::function<bool(const verify_info&)> verify_callback;
  /// For protocols that frame their own data (HTTP with Content-Length): a peer's close
  /// without close_notify is then a clean end of stream, and ssl_stream::truncated() says it
  /// happened. Off by default: without it, such an end is a `truncated` error.
  bool allow_truncation = false;
  /// Client: a session saved by ssl_stream::session() (in this process or another), offered
  /// for resumption to the name it was made for; the server decides, and a resumed session
  /// must still pass this client's checks. A context offers a TLS 1.3 one once; offering the
  /// same text to several contexts is the caller's choice (RFC 8446 §C.4 advises against it).
  std::string session;
  /// Server: a file of session ticket keys, shared by every server that should resume the
  /// others' sessions (a fleet behind one name). It holds one or more 80-byte keys, newest
  /// first, each a 16-byte name, a 32-byte HMAC-SHA256 key and a 32-byte AES-256-CBC key
  /// (nginx's ssl_session_ticket_key format): make one with `openssl rand 80 > ticket.key`
  /// (mode 0600: anyone with it can decrypt recorded TLS 1.2 sessions and forge resumptions),
  /// e.g. `(umask 077; openssl rand 80 > ticket.key)`. As OpenSSH refuses a private key, a
  /// file that is a symbolic link, not a regular file, or readable or writable by group or
  /// others (mode & 077) is a config_error (checked on the opened file).
  /// It is read when the context is built: the first key encrypts new tickets, every key
  /// decrypts, and a ticket of an older key is replaced by one of the newest. To rotate, put a
  /// new key in front, rebuild the contexts of every server (reload), and later drop the last
  /// key: tickets of a key no longer in the file get a full handshake, not an error. A file
  /// that is unreadable, empty or not a whole number of keys is a config_error.
  /// Empty: each context makes its own random key, replaced every `ticket_lifetime`, the
  /// previous one still accepted (only this context resumes its sessions).
  std::string ticket_key_file;
  /// Server: how long a session can be resumed, sent to clients as the lifetime hint of each
  /// ticket (OpenSSL's session timeout), from 1 s to 7 days (RFC 8446 §4.6.1). Without a
  /// ticket_key_file, also how often the context's random ticket key is replaced; a ticket
  /// stays usable for its whole lifetime, since the previous key still decrypts.
  std::chrono::seconds ticket_lifetime{7200};
  /// Server: a DER OCSP response for `certificate` (RFC 6960), stapled to the handshake of
  /// each client that asks for the certificate's status (status_request, as `openssl s_client
  /// -status` or a browser sends), and to no other. Read when the context is built, so a
  /// reload (a new context) staples the file's new contents: fetch a fresh response before
  /// the old one's nextUpdate (e.g. `openssl ocsp -issuer ca.pem -cert server.pem -url URL
  /// -respout response.der`) and reload: past its nextUpdate the response is no longer
  /// stapled. A file that is unreadable, not a DER OCSP response, not successful, about another
  /// certificate (by its whole CertID: serial number, issuer name hash and, when the issuer is
  /// in the chain or ca_file, issuer key hash), not "good" or out of date is a config_error.
  std::string ocsp_response_file;
  /// Client: ask the server to staple its OCSP response (the status_request extension);
  /// ssl_stream::ocsp_status() then reports it. Off by default: the response costs the server
  /// bytes in every handshake.
  bool request_ocsp = false;
};

namespace detail {
struct context_state;
}

/// An immutable, shared TLS configuration (an SSL_CTX) plus its session cache.
class ssl_context {
 public:
  bool is_server() const noexcept;
  const ssl_options& options() const noexcept;
  /// The OpenSSL SSL_CTX*; the one escape hatch. Do not change it once streams use it.
  void* native_handle() const noexcept;

  explicit ssl_context(std::shared_ptr<detail::context_state> s) : s_(std::move(s)) {}
  const std::shared_ptr<detail::context_state>& state() const noexcept { return s_; }

 private:
  std::shared_ptr<detail::context_state> s_;
};

/// Throws config_error if the certificate, key, password, CA, CRL or cipher options are bad.
/// A server needs `certificate`.
ssl_context make_ssl_server_context(const ssl_options& options);
ssl_context make_ssl_client_context(const ssl_options& options);

}  // namespace sslstream
