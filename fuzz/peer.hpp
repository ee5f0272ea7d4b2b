// Fuzzing support: a real loopback TCP connection per input, one end ours (a socket_stream for
// our SSL stream), the other raw (the fuzzer's bytes are written to it, then its output is shut,
// so our side always reaches end of stream and no input can make it wait).
#pragma once

#include <sslstream/sslstream.hpp>
#include <string>
#include <utility>

namespace fuzzing {

/// {ours, raw}. `ours_accepted` picks which end ours is: accepted (we are the server) or
/// connecting (we are the client). One listener serves the whole run.
inline std::pair<sslstream::socket_stream, sslstream::socket_stream> connection(
    bool ours_accepted) {
  static auto listener = sslstream::make_socket(sslstream::passive{.local_host = "127.0.0.1"});
  auto active = sslstream::make_socket(
      sslstream::active{.remote_host = "127.0.0.1", .remote_port = listener.local_port()});
  auto accepted = listener.accept_connection();
  if (ours_accepted) return {std::move(accepted), std::move(active)};
  return {std::move(active), std::move(accepted)};
}

/// Sends the fuzzer's bytes as the peer and ends the peer's output. Loopback buffers hold far
/// more than the largest input (-max_len), so this never waits for our side to read.
inline void send_as_peer(sslstream::socket_stream& raw, const std::uint8_t* data,
                         std::size_t size) {
  raw.write_all(std::span(reinterpret_cast<const std::byte*>(data), size));
  raw.shutdown(sslstream::direction::output);
}

/// A key and self-signed certificate made once per run: ECDSA, so that a valid ClientHello
/// costs a cheap signature and the fuzzer keeps its pace.
inline const std::string& self_signed_pem() {
  static const std::string pem = sslstream::make_self_signed_certificate({});
  return pem;
}

}  // namespace fuzzing
