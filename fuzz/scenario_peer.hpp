// The real peer of fuzz_session: an OpenSSL SSL object in the same process, on memory BIOs,
// whose records go to the raw end of the loopback connection. It completes a real handshake
// with our stream, then turns the fuzz input's plaintext commands into well-formed records
// (application data of any size, KeyUpdate, tickets, renegotiation, close_notify, encrypted
// alerts) or damages them on the wire (corruption, truncation, garbage, FIN, RST). Recorded
// encrypted bytes would almost all fail their MAC once mutated; commands do not.
//
// Its random source is deterministic (deterministic_rand.hpp), so an input replays.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <span>
#include <sslstream/sslstream.hpp>
#include <string>

namespace fuzzing {

struct ssl_free_deleter {
  void operator()(SSL* s) const noexcept { SSL_free(s); }
};

/// The peer's settings, matched to our side's configuration (configs.hpp): a client with the
/// client certificate when our server asks for one and ALPN when ours has it; a server with the
/// ECDSA certificate (our clients trust it and configuration 7 pins it), asking for a
/// certificate when our client has one. `tls12`: the peer offers at most TLS 1.2.
SSL_CTX* peer_context(bool peer_is_server, unsigned config, bool tls12);

/// The commands, one byte each (the value modulo 16) followed by their arguments; a missing
/// argument byte reads as 0. They run after the handshake, except `cut` and `corrupt` at the
/// start of the script, which damage the peer's handshake flights.
enum class op : unsigned {
  data,             // u16 length: that much application data (words and newlines)
  data_from_input,  // u8 length, then the bytes themselves
  fragment,         // u16: the peer's maximum record size (512..16384)
  key_update,       // u8: bit 0 = update_requested
  key_updates,      // u8 count: a KeyUpdate flood (update_requested on odd ones)
  ticket,           // server peer: a NewSessionTicket; TLS 1.2 client peer: renegotiate
  tickets,          // u8 count: a ticket flood
  close_notify,     //
  fin,              // end the peer's output (no close_notify unless sent before); ends the script
  rst,              // abort the connection (SO_LINGER 0); ends the script
  raw,              // u8 length, then bytes written to the wire as they are (garbage, alerts)
  cut,              // u16 k: the peer's next output is cut after k bytes, then FIN; ends
  corrupt,          // u16 k, u8 x: the next output's byte k (mod its size) is XORed with x|1
  read,             // the peer reads what our side sent (its data, KeyUpdate, close_notify)
  alert,            // the peer receives a bogus record and answers with an encrypted alert
  tiny_records,     // u8 count: that many one-byte records
};

/// Runs the whole peer side of one input: handshake, commands, then FIN and reading our side
/// until it closes. Never throws; every wait is bounded by `raw`'s timeout.
void run_peer(SSL* ssl, sslstream::socket_stream& raw, std::span<const std::uint8_t> script);

}  // namespace fuzzing
