// How far our side got with the current fuzz input: whether its handshake completed, and after
// how many of the peer's bytes. Set by OpenSSL callbacks on our contexts (the library sets
// neither callback), cleared by the target before each input.
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <cstddef>
#include <sslstream/sslstream.hpp>

namespace fuzzing {

inline std::atomic<bool> handshake_done{false};
/// Bytes of the peer's records our side has processed, and their count when the handshake
/// completed (0: not yet). Records are counted as OpenSSL parses them, so read-ahead does
/// not inflate the count.
inline std::atomic<std::size_t> peer_bytes_processed{0}, handshake_end{0};

inline void clear_progress() {
  handshake_done = false;
  peer_bytes_processed = 0;
  handshake_end = 0;
}

inline void watch_handshakes(const sslstream::ssl_context& c) {
  auto* ctx = static_cast<SSL_CTX*>(c.native_handle());
  SSL_CTX_set_info_callback(ctx, [](const SSL*, int where, int) {
    if (!(where & SSL_CB_HANDSHAKE_DONE)) return;
    if (!handshake_done.exchange(true)) handshake_end = peer_bytes_processed.load();
  });
  SSL_CTX_set_msg_callback(
      ctx, [](int write_p, int, int content_type, const void* buf, std::size_t len, SSL*, void*) {
        if (write_p || content_type != SSL3_RT_HEADER || len < 5) return;
        auto* h = static_cast<const unsigned char*>(buf);
        peer_bytes_processed += 5 + (std::size_t{h[3]} << 8 | h[4]);
      });
}

}  // namespace fuzzing
