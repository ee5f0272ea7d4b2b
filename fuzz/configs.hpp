// The configurations the server and client fuzz targets run and record_seeds records with:
// one table, so that a recorded seed replays against exactly the settings it was made with.
// A seed's first byte picks the configuration (its low three bits).
//
// Contexts are built with deterministic_random(), so a context's ticket keys are the same in
// every process: a recorded client's ticket is accepted when its resumption is replayed.
#pragma once

#include <sslstream/sslstream.hpp>
#include <string>

#include "credentials.hpp"
#include "deterministic_rand.hpp"
#include "progress.hpp"

namespace fuzzing {

inline constexpr unsigned configurations = 8;

/// 0 ECDSA, TLS 1.2-1.3; 1 ECDSA, TLS 1.2; 2 client certificate required; 3 ALPN, TLS 1.3
/// only; 4 RSA; 5 RSA, TLS 1.2; 6 client certificate optional, TLS 1.2; 7 ChaCha20 only.
inline sslstream::ssl_options server_options(unsigned which) {
  using namespace sslstream;
  ssl_options o;
  o.certificate_pem = credentials::server_ecdsa;
  switch (which % configurations) {
    case 0: break;
    case 1: o.max_version = tls_version::tls1_2; break;
    case 2:
      o.verify = verify_mode::required;
      o.ca_pem = credentials::client_ecdsa;
      break;
    case 3:
      o.alpn = {"h2", "http/1.1"};
      o.min_version = tls_version::tls1_3;
      break;
    case 4: o.certificate_pem = credentials::server_rsa; break;
    case 5:
      o.certificate_pem = credentials::server_rsa;
      o.max_version = tls_version::tls1_2;
      break;
    case 6:
      o.verify = verify_mode::optional;
      o.ca_pem = credentials::client_ecdsa;
      o.max_version = tls_version::tls1_2;
      break;
    case 7:
      o.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
      o.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305";
      break;
  }
  return o;
}

/// 0 verifying (the default); 1 verify_mode::none; 2 verifying, TLS 1.2; 3 client certificate
/// and ALPN; 4 none, TLS 1.2; 5 ChaCha20 only; 6 client certificate, TLS 1.2; 7 pinned.
inline sslstream::ssl_options client_options(unsigned which) {
  using namespace sslstream;
  ssl_options o;
  o.ca_pem = std::string(credentials::server_ecdsa) + credentials::server_rsa;
  o.server_name = "localhost";
  switch (which % configurations) {
    case 0: break;
    case 1: o.verify = verify_mode::none; break;
    case 2: o.max_version = tls_version::tls1_2; break;
    case 3:
      o.certificate_pem = credentials::client_ecdsa;
      o.alpn = {"h2", "http/1.1"};
      break;
    case 4:
      o.verify = verify_mode::none;
      o.max_version = tls_version::tls1_2;
      break;
    case 5: o.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256"; break;
    case 6:
      o.certificate_pem = credentials::client_ecdsa;
      o.max_version = tls_version::tls1_2;
      break;
    case 7:
      o.pinned_sha256 = {
          "A0:9B:33:39:16:6D:D7:60:EB:22:A6:02:62:2D:64:25:17:0C:1A:7F:16:34:BA:7E:6E:68:14:B4:"
          "77:AA:F1:09"};  // server_ecdsa's
      break;
  }
  return o;
}

inline sslstream::ssl_context server_context(unsigned which) {
  deterministic_random("server context");
  auto c = sslstream::make_ssl_server_context(server_options(which));
  watch_handshakes(c);
  return c;
}

/// A client context holds a session cache: a target builds a fresh one per input, or an
/// earlier input's ticket would change the next ClientHello.
inline sslstream::ssl_context client_context(unsigned which) {
  deterministic_random("client context");
  auto c = sslstream::make_ssl_client_context(client_options(which));
  watch_handshakes(c);
  return c;
}

}  // namespace fuzzing
