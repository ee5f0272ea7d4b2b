// Internal: several certificates on one server (ssl_options::more_certificates). The ClientHello
// callback asks certificate_selection which certificates the client's SNI gets; OpenSSL then
// picks among their key types by what the client can verify.
#pragma once

#include <cstddef>
#include <sslstream/ssl_context.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "ossl.hpp"

namespace sslstream::detail {

/// A certificate, the rest of its chain and its private key, read and checked.
struct key_pair {
  x509_ptr leaf;
  x509_stack_ptr chain;
  evp_pkey_ptr key;
  std::string certificate;  // the file, or "ssl_options::...certificate_pem", for errors
  std::string key_file;     // the file the key came from
};

/// Reads one certificate and its key as ssl_options::certificate is read (ssl_context.cpp), and
/// checks that they match. `option` prefixes the settings named in errors ("ssl_options::" or
/// "ssl_options::more_certificates[1]."); `password_field` is the password's setting there.
/// Throws config_error naming the file at fault.
key_pair read_key_pair(const certificate_files& files, const std::string& option,
                       const char* password_field);
std::string key_mismatch_message(const key_pair& pair);

/// Which of a server's certificates each handshake serves. Built once with the context and
/// read-only afterwards, so any number of handshakes may use it at once.
class certificate_selection {
 public:
  /// `ctx` already holds ssl_options::certificate, and `session_id_context` is its session-ID
  /// context. Reads and checks o.more_certificates; those with exactly the certificate's names
  /// go into `ctx` beside it (OpenSSL keeps one per key type); the others are planned per SNI
  /// name. Throws config_error naming the file at fault.
  certificate_selection(SSL_CTX* ctx, const ssl_options& o, const std::string& session_id_context);

  /// From the ClientHello callback, before OpenSSL looks at sessions or certificates: gives
  /// `ssl` the certificates its SNI matches (nothing to do when that is the context's own) and
  /// a session-ID context of their own, so a session resumes only where the same certificates
  /// serve. False when OpenSSL refused (its error queue says why).
  bool select(SSL* ssl) const;

 private:
  /// The certificates one SNI name gets, at most one per key type, and their sessions' context.
  struct group {
    std::vector<const key_pair*> pairs;
    std::string session_id_context;
  };
  const group* group_for(const std::string& server_name) const;

  std::vector<key_pair> pairs_;  // [0] is ssl_options::certificate, then more_certificates
  std::vector<group> groups_;    // [0] is the context's own: SNI absent, unknown or its names
  std::unordered_map<std::string, std::size_t> exact_;     // DNS name → group
  std::unordered_map<std::string, std::size_t> wildcard_;  // "example.com" of "*.example.com"
};

}  // namespace sslstream::detail
