#include <cerrno>
#include <cstring>
#include <sslstream/error.hpp>

namespace sslstream {
namespace {

class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sslstream"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::handshake_failed: return "TLS handshake failed";
      case errc::verify_failed: return "certificate verification failed";
      case errc::truncated: return "connection closed without TLS close_notify (truncated)";
      case errc::protocol_error: return "TLS protocol error";
      case errc::bad_file: return "cannot read file";
      case errc::bad_certificate: return "no usable certificate";
      case errc::bad_key: return "no usable private key";
      case errc::bad_password: return "wrong or missing private key password";
      case errc::key_mismatch: return "private key does not match certificate";
      case errc::bad_option: return "invalid TLS option";
      case errc::host_not_found: return "host not found";
    }
    return "unknown sslstream error";
  }
};

}  // namespace

const std::error_category& category() noexcept {
  static const category_impl c;
  return c;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

// std::system_error's what() appends code.message(); our messages already say it, so what()
// returns the message alone.
error::error(std::error_code code, std::string identifier, const std::string& message)
    : std::system_error(code, message), identifier_(std::move(identifier)), message_(message) {}

verify_error::verify_error(long verify_code, std::string verify_text,
                           std::string certificate_subject, std::string certificate_fingerprint,
                           const std::string& message)
    : tls_error(errc::verify_failed, "verify-failed", message),
      verify_code_(verify_code),
      verify_text_(std::move(verify_text)),
      subject_(std::move(certificate_subject)),
      fingerprint_(std::move(certificate_fingerprint)) {}

std::string errno_identifier(int err) {
  switch (err) {
    case ECONNREFUSED: return "connection-refused";
    case EADDRINUSE: return "address-in-use";
    case EADDRNOTAVAIL: return "address-not-available";
    case EHOSTUNREACH: return "host-unreachable";
    case ENETUNREACH: return "network-unreachable";
    case ENETDOWN: return "network-down";
    case ECONNRESET: return "connection-reset";
    case ECONNABORTED: return "connection-aborted";
    case EPIPE: return "broken-pipe";
    case ETIMEDOUT: return "timeout";
    case EACCES: return "permission-denied";
    case EMFILE:
    case ENFILE: return "too-many-files";
    case ENOTCONN: return "not-connected";
    default: return "error-" + std::to_string(err);
  }
}

}  // namespace sslstream
