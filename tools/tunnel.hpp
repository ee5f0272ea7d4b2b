// connect HOST PORT --accept [ADDR:]LOCALPORT: a client tunnel (stunnel's client mode). Local
// plaintext TCP connections, each relayed over a new TLS connection to HOST:PORT, verified as
// `connect` verifies (the same flags, the same context).
#pragma once

#include <chrono>
#include <string>

#include "cli.hpp"

namespace cli {

struct accept_flags {
  std::string accept;     ///< [ADDR:]LOCALPORT, as given
  std::string port_file;  ///< --port-file: the local port, once listening
};

/// Registers --accept and --port-file on connect.
void add_accept_flags(CLI::App& connect, accept_flags& a);

/// Serves until killed; returns an exit status only when it cannot start (or stops
/// accepting).
int serve_tunnel(const accept_flags& a, const std::string& host, std::uint16_t port,
                 std::chrono::milliseconds connect_timeout, const tls_flags& tls);

}  // namespace cli
