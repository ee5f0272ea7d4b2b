// Internal: one owner for every OpenSSL handle (no *_free anywhere else), and the error queue.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>

namespace sslstream::detail {

template <auto Free>
struct ossl_deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ossl_deleter<SSL_CTX_free>>;
using ssl_ptr = std::unique_ptr<SSL, ossl_deleter<SSL_free>>;
using ssl_session_ptr = std::unique_ptr<SSL_SESSION, ossl_deleter<SSL_SESSION_free>>;
using x509_ptr = std::unique_ptr<X509, ossl_deleter<X509_free>>;
using x509_crl_ptr = std::unique_ptr<X509_CRL, ossl_deleter<X509_CRL_free>>;
using evp_pkey_ptr = std::unique_ptr<EVP_PKEY, ossl_deleter<EVP_PKEY_free>>;
using bio_ptr = std::unique_ptr<BIO, ossl_deleter<BIO_free_all>>;
using ocsp_response_ptr = std::unique_ptr<OCSP_RESPONSE, ossl_deleter<OCSP_RESPONSE_free>>;
using ocsp_basic_ptr = std::unique_ptr<OCSP_BASICRESP, ossl_deleter<OCSP_BASICRESP_free>>;
inline void free_x509_stack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
using x509_stack_ptr = std::unique_ptr<STACK_OF(X509), ossl_deleter<free_x509_stack>>;

/// Empties the thread's OpenSSL error queue into one line: "reason (lib); reason (lib)".
std::string drain_errors();

/// A memory BIO's contents as a string.
std::string bio_to_string(BIO* b);

/// A BIO over a non-blocking TCP descriptor that sends with MSG_NOSIGNAL (OpenSSL's own socket
/// BIO uses write(), which raises SIGPIPE) and serves `preread` bytes first (bytes a plain
/// stream had buffered before STARTTLS). last_errno keeps the errno of a failed call, since
/// OpenSSL's SSL_ERROR_SYSCALL needs it and errno does not survive the way back.
struct socket_bio_state {
  int fd = -1;
  std::string preread;
  std::size_t preread_pos = 0;
  int last_errno = 0;
  bool more = false;         // more records follow at once: send with MSG_MORE (see write_until)
  bool read_socket = false;  // a recv() has returned: bytes (or EOF) came from the peer itself
  std::uint64_t recvs = 0;   // recv() calls that returned bytes or EOF
};
/// The returned BIO points at `state`, which must outlive it.
BIO* new_socket_bio(socket_bio_state* state);

}  // namespace sslstream::detail
