// The tool's one relay between a TLS stream and plaintext descriptors, each direction on its
// own until it ends (half close both ways): stdin/stdout (listen, connect), a TCP backend
// (listen --forward), a command's pipes (listen --exec), a local client (connect --accept).
// One thread, one poll() loop, the TLS side non-blocking: a relay run by the server engine's
// worker holds that worker only, never a thread of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "cli.hpp"

namespace cli {

/// The plaintext side of a relay.
struct plain_side {
  int in = -1;          ///< read: bytes for the TLS peer (a socket, a pipe, stdin)
  int out = -1;         ///< written: the TLS peer's bytes (may be the same socket as `in`)
  std::string in_name;  ///< for messages: "standard input", "the backend 10.0.0.5:80"
  std::string out_name;
  /// Passes on a clean end of the TLS peer's bytes: shutdown(SHUT_WR) on a socket, close() on
  /// a pipe. Called once, after everything before it was written.
  std::function<void()> end_output;
  /// A write to `out` failing because nobody reads it any more (EPIPE, a reset): true for
  /// stdout (the relay fails and the TLS peer sees a reset, never a clean end of bytes it sent
  /// and we lost); false for a backend or command that is done, which may stop reading while
  /// it still sends (HTTP/1.0, `echo hi`): the TLS peer's further bytes are dropped (counted)
  /// and the other direction goes on.
  bool fail_on_lost_output = true;
};

struct relay_options {
  std::chrono::milliseconds idle_timeout{0};  ///< nothing moved either way for this long: fail
  bool allow_truncation = false;  ///< a TLS peer's close without close_notify after ours is EOF
  bool quiet = false;
  /// The TLS peer took none of our bytes for this long while we had some for it: fail (as the
  /// server engine's write_timeout; a peer that stops reading must not hold a worker forever).
  /// 0: none.
  std::chrono::milliseconds write_timeout{30000};
};

struct relay_result {
  std::uint64_t to_tls = 0;    ///< bytes read from `in` and sent to the TLS peer
  std::uint64_t from_tls = 0;  ///< bytes from the TLS peer written to `out`
  std::uint64_t dropped = 0;   ///< bytes from the TLS peer that `out` no longer took
  /// The TLS input ended here (the server engine stopping), not by the peer's close_notify:
  /// the relay returned at once, with neither side ended cleanly.
  bool stopped = false;
};

/// The idle limit of a --forward, --exec or --accept relay: --idle-timeout, or 5 minutes when
/// none was given. Each such connection holds a worker (or a tunnel thread): a client that
/// completes its handshake and then says nothing must not hold one for ever.
std::chrono::milliseconds tunnel_idle_limit(double idle_timeout_seconds);

/// Relays until both directions have ended: `in`'s EOF becomes our close_notify, the peer's
/// close_notify becomes end_output(). Throws what failed (a TLS error, a read or write error
/// naming the side, a socket_error "timeout" past idle_timeout); when bytes from the TLS peer
/// were lost it resets the TLS connection first. The caller owns and closes the descriptors.
relay_result relay(sslstream::ssl_stream& s, const plain_side& p, const relay_options& o);

}  // namespace cli
