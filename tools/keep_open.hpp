// listen --keep-open: many connections at once without a thread per idle connection. An idle
// connection waits in an epoll set; when its socket becomes readable a worker thread (from a
// pool of at most 64, so a slow client never holds up the others unless 64 are slow at once,
// and no peer decides how many threads there are) handshakes or serves what arrived, and parks
// it again once nothing more is buffered. A worker waits at most --handshake-timeout (counted
// from the accept) for a handshake and --idle-timeout (30 s when none is set) for a read or
// write. Memory per idle connection is then the TLS state alone: no stack, no I/O buffer.
#pragma once

#include <chrono>
#include <functional>

#include "cli.hpp"

namespace cli {

struct keep_open_options {
  bool echo = false;             ///< echo each connection (else copy its bytes to stdout)
  unsigned max_connections = 0;  ///< stop accepting after this many (0: never)
  std::chrono::milliseconds handshake_timeout{30000};
  std::chrono::milliseconds idle_timeout{0};  ///< 0: none
  const tls_flags* tls = nullptr;
};

/// Accepts and serves until max_connections have been accepted and all of them have ended.
/// `ready` is called once the server is fully set up, just before the first accept.
void serve_keep_open(sslstream::passive_socket& listener, const sslstream::ssl_context& ctx,
                     const keep_open_options& o, const std::function<void()>& ready);

}  // namespace cli
