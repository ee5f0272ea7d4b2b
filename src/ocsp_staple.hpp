// Internal: OCSP stapling (RFC 6066 §8, RFC 8446 §4.4.2.1) of a response read from
// ssl_options::ocsp_response_file when the context is built, so that a reload, which builds a
// new context, staples the file's new contents.
#pragma once

#include <openssl/ssl.h>

#include <ctime>
#include <memory>
#include <optional>
#include <string>

namespace sslstream::detail {

class ocsp_staple {
 public:
  /// Reads the DER OCSPResponse in `path` for the context's certificate `leaf`, whose issuer
  /// is looked for in `chain` (the context's chain), then `store` (its trusted CAs; may be
  /// null); throws config_error when the file is unreadable, is not a DER OCSP response,
  /// reports no success (tryLater, unauthorized, ...), is not about `leaf` (its whole CertID:
  /// serial number, issuer name and, when the issuer is found, issuer key) or is out of date.
  static std::shared_ptr<ocsp_staple> from_file(const std::string& path, X509* leaf,
                                                STACK_OF(X509) * chain, X509_STORE* store);

  /// Whether the response may still be stapled at `now`: before its nextUpdate, if it has one.
  bool current_at(std::time_t now) const noexcept;

  /// Makes `ctx` staple the response of its context_state to each handshake whose client asks
  /// (status_request) and that uses the certificate the response is about.
  static void install(SSL_CTX* ctx);

  /// OpenSSL's status callback for this response: SSL_TLSEXT_ERR_OK once the response is given
  /// to `ssl` (a copy: OpenSSL frees it with the connection), SSL_TLSEXT_ERR_NOACK otherwise,
  /// and from its nextUpdate on.
  int on_status_request(SSL* ssl) const noexcept;

  const std::string& der() const noexcept { return der_; }

 private:
  std::string der_;
  X509* leaf_ = nullptr;                    // the context's own certificate, which outlives this
  std::optional<std::time_t> next_update_;  // none: the response never goes stale
};

}  // namespace sslstream::detail
