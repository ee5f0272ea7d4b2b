// Internal: whether the bytes at the head of a new connection hold its whole ClientHello yet,
// read with MSG_PEEK before OpenSSL sees any of them. OpenSSL, given a first record, sets up
// its whole handshake state (48 KiB resident with OpenSSL 3.0); a peer that stalls before its
// ClientHello is whole should cost only the stream (10 KiB) — including one that sends a tiny
// complete record, then nothing.
#pragma once

#include <cstddef>
#include <span>

namespace sslstream::detail {

/// The most the engine peeks: a ClientHello whose first this-many bytes are well-formed
/// handshake records counts as whole (the peer has sent that much; OpenSSL takes it from here).
inline constexpr std::size_t hello_peek_size = 4096;

/// True when `peeked` (the first bytes queued, at most hello_peek_size) holds a whole
/// ClientHello message, or anything that is not a well-formed start of one (OpenSSL rejects it
/// at once), or hello_peek_size bytes of well-formed records. False while a well-formed
/// ClientHello is still arriving.
bool client_hello_whole(std::span<const unsigned char> peeked) noexcept;

}  // namespace sslstream::detail
