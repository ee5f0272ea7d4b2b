// What `listen` does with each connection's plaintext besides stdin/stdout and --echo:
// --forward HOST:PORT (a new TCP connection to a backend, stunnel's server mode) or --exec CMD
// (a new `sh -c CMD` on a pair of pipes, inetd style). Both are blocking handlers, run on the
// server engine's workers with --keep-open and on the main thread without.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "cli.hpp"

namespace cli {

struct backend_flags {
  std::string forward;  ///< HOST:PORT, as given
  std::string exec;     ///< the command for sh -c
  bool any() const { return !forward.empty() || !exec.empty(); }
};

/// A host and a port from "HOST:PORT", "[IPv6]:PORT" or, with default_host, "PORT".
struct host_port {
  std::string host;
  std::uint16_t port = 0;
};
/// Throws std::invalid_argument saying what is wrong. `min_port` is 0 where the system may
/// choose the port.
host_port parse_host_port(const std::string& text, const std::string& default_host,
                          unsigned min_port);

/// Registers --forward and --exec on listen; each excludes the other and `echo`.
void add_backend_flags(CLI::App& listen, backend_flags& b, CLI::Option* echo);

/// Serves one connection as the flags say and returns the exit status a one-connection listen
/// should end with. Logs its own failures on stderr, each with the peer's address, and never
/// throws: a failed connection must not end a server of many.
using connection_handler = std::function<int(sslstream::ssl_stream&)>;
connection_handler make_backend_handler(const backend_flags& b, const tls_flags& tls);

// The two handlers (forward.cpp, exec.cpp).
int forward_connection(sslstream::ssl_stream& s, const host_port& to, const tls_flags& tls);
int exec_connection(sslstream::ssl_stream& s, const std::string& command, const tls_flags& tls);

/// "sslstream listen: ADDRESS:PORT: " — every log line of a connection starts so, so that
/// concurrent clients can be told apart.
std::string connection_prefix(sslstream::ssl_stream& s);

}  // namespace cli
