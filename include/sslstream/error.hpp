// sslstream/error.hpp — the exceptions sslstream throws.
//
//   try { stream << "hi" << std::flush; }
//   catch (const sslstream::error& e) {
//     std::cerr << e.identifier() << ": " << e.what() << '\n';   // "connection-reset: ..."
//   }
//
// Every failure caused by the network, the peer or the configuration is a sslstream::error (a
// std::system_error). Misuse of the API (calling accept on a closed socket, say) is a
// std::logic_error instead, so the two are never confused. The subclasses sort errors into the
// few kinds a caller switches on; identifier() gives the Allegro-style keyword.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace sslstream {

/// Error codes for failures that have no errno: TLS, verification, configuration.
enum class errc {
  handshake_failed = 1,  ///< the TLS handshake failed (alert, no shared version, not TLS, ...)
  verify_failed,         ///< the peer's certificate did not verify
  truncated,             ///< the peer's TCP stream ended without a TLS close_notify
  protocol_error,        ///< a TLS error after the handshake (bad record, alert)
  bad_file,              ///< a certificate/key/CA/CRL file is missing or unreadable
  bad_certificate,       ///< a file has no usable certificate
  bad_key,               ///< a file has no usable private key
  bad_password,          ///< the private key is encrypted and the password is missing or wrong
  key_mismatch,          ///< the private key does not belong to the certificate
  bad_option,            ///< an option value OpenSSL rejects (cipher list, version bounds, ...)
  host_not_found,        ///< the host name does not resolve
};

/// The std::error_category of sslstream::errc.
const std::error_category& category() noexcept;
std::error_code make_error_code(errc e) noexcept;

/// Base of every sslstream exception. code() is an errno (std::system_category) for socket
/// errors and an sslstream::errc otherwise.
class error : public std::system_error {
 public:
  error(std::error_code code, std::string identifier, const std::string& message);
  /// The Allegro-style keyword: "connection-refused", "timeout", "verify-failed", ...
  const std::string& identifier() const noexcept { return identifier_; }
  /// The whole message: what failed and, where there is one, what to do about it.
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string identifier_;
  std::string message_;
};

/// A socket-level failure: connect, listen, accept, read or write on the descriptor, name
/// lookup, or a timeout. code() holds the errno (ETIMEDOUT for timeouts).
class socket_error : public error {
 public:
  using error::error;
};

/// A bad certificate, key, CA, CRL or option: raised when a context is built, before any
/// connection exists, or when a stream is made from options that cannot apply to its socket
/// (a verifying client on a connection with no host name).
class config_error : public error {
 public:
  using error::error;
};

/// A TLS failure: the handshake, a protocol error, or a truncated stream. what() includes
/// OpenSSL's error queue.
class tls_error : public error {
 public:
  using error::error;
};

/// The peer's certificate did not verify. Carries OpenSSL's verify code and text, and the
/// subject of the certificate that failed.
class verify_error : public tls_error {
 public:
  verify_error(long verify_code, std::string verify_text, std::string certificate_subject,
               std::string certificate_fingerprint, const std::string& message);
  long verify_code() const noexcept { return verify_code_; }
  const std::string& verify_text() const noexcept { return verify_text_; }
  const std::string& certificate_subject() const noexcept { return subject_; }
  /// SHA-256 of the certificate that failed, lower-case hex (what a pin would name).
  const std::string& certificate_fingerprint() const noexcept { return fingerprint_; }

 private:
  long verify_code_;
  std::string verify_text_;
  std::string subject_;
  std::string fingerprint_;
};

/// The Allegro-style identifier of an errno value ("connection-refused" for ECONNREFUSED...),
/// or "error-<n>" for an errno without one.
std::string errno_identifier(int err);

}  // namespace sslstream

// A standard library specialisation, left out of the API reference.
/// @cond
template <>
struct std::is_error_code_enum<sslstream::errc> : std::true_type {};
/// @endcond
