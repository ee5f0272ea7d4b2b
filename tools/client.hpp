// The client side shared by connect and info: HOST PORT and the TLS flags, then a connected,
// handshaken stream.
#pragma once

#include "cli.hpp"
#include "tunnel.hpp"

namespace cli {

struct connect_flags {
  std::string host;
  std::uint16_t port = 0;
  double connect_timeout = 30;
  std::string starttls;  ///< --starttls: the protocol whose plaintext exchange comes first
  accept_flags accept;   ///< connect --accept: a tunnel for local connections, not stdin/stdout
  tls_flags tls;
};

/// HOST, PORT, --connect-timeout and the client's TLS flags.
void add_common(CLI::App& sub, connect_flags& f);
/// The connection to HOST:PORT, ready for TLS: connected, then --starttls's plaintext exchange;
/// `at` follows the phases.
sslstream::socket_stream dial(const connect_flags& f, phase& at);
/// Connects and handshakes; `at` follows the phases for the exit status. `verify_optional`
/// finishes the handshake whatever the verdict (info shows it); `request_ocsp` asks the server
/// to staple its OCSP response.
sslstream::ssl_stream open(const connect_flags& f, phase& at, bool verify_optional,
                           bool request_ocsp = false);

}  // namespace cli
