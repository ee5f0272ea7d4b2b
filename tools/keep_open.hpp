// listen --keep-open: many connections at once on the library's server engine
// (sslstream::server). Its event loops accept and handshake without blocking; a coroutine
// handler (--echo, the copy to stdout) keeps an idle connection in its loop without a thread,
// a blocking handler (--forward, --exec) runs on at most max_workers threads. This file adds
// what a command-line server needs around the engine: --max-connections, signals (SIGTERM and
// SIGINT drain, SIGHUP reloads the certificate files), messages naming the peer, the exit
// reason.
#pragma once

#include <chrono>
#include <functional>
#include <sslstream/server.hpp>
#include <variant>

#include "cli.hpp"

namespace cli {

struct keep_open_options {
  unsigned max_connections = 0;  ///< stop after N connections (0: never)
  std::chrono::milliseconds handshake_timeout{30000};
  std::chrono::milliseconds idle_timeout{0};  ///< 0: none
  std::chrono::milliseconds drain{10000};     ///< --drain on SIGTERM/SIGINT
  std::size_t max_workers = 64;               ///< for blocking handlers
  const tls_flags* tls = nullptr;
  /// SIGHUP: builds a fresh context from the files; throws if they are bad (the old context
  /// then stays). Empty: SIGHUP reloads nothing (and says so).
  std::function<sslstream::ssl_context()> reload;
};

using keep_open_handler =
    std::variant<sslstream::server::blocking_handler, sslstream::server::coroutine_handler>;

/// Serves until max_connections have been accepted and have all ended, or until SIGTERM or
/// SIGINT (then stops accepting and lets the connections finish within `o.drain`); returns the
/// exit status. `ready` is called once the server runs (before it, clients wait in the
/// listen backlog). A handler may throw: its connection's error is reported on stderr with
/// the peer's address (unless -q), never ends the server. With -v, the handshake of each
/// connection is described, each line naming the peer. Throws when the server cannot run, and
/// when standard output failed (the copy to stdout): every connection is then ended with an
/// error.
int serve_keep_open(sslstream::passive_socket listener, sslstream::ssl_context ctx,
                    const keep_open_options& o, keep_open_handler handler,
                    const std::function<void()>& ready);

/// The coroutine handlers of listen --keep-open: --echo sends each connection's bytes back; the
/// default copies them to standard output (whole reads at a time, so connections do not
/// interleave inside a read).
sslstream::server::coroutine_handler echo_handler();
sslstream::server::coroutine_handler stdout_handler();

}  // namespace cli
