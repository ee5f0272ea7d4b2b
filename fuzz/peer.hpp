// Fuzzing support: a real loopback TCP connection per input, one end ours (a socket_stream for
// our SSL stream), the other raw (the fuzzer's bytes are written to it, then its output is shut,
// so our side always reaches end of stream and no input can make it wait), and the driver of
// one input shared by the server and client targets.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <sslstream/sslstream.hpp>
#include <utility>

#include "configs.hpp"
#include "deterministic_rand.hpp"
#include "tail_mutator.hpp"
#include "tally.hpp"

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

/// Reads to the end of the stream through the binary API, in pieces of `piece` bytes (at most
/// 4096); sets `data_read` once a byte arrived, even if an error ends the stream later.
inline void read_to_end(sslstream::ssl_stream& s, bool& data_read, std::size_t piece = 4096) {
  std::array<std::byte, 4096> buf;
  while (s.read_some(std::span(buf).first(std::min(piece, buf.size()))) > 0) data_read = true;
}

/// The server and client targets' custom mutator (LLVMFuzzerCustomMutator), fed by one_input.
inline tail_mutator replay_mutator;

/// One fuzz input, for either side: its first byte picks our configuration (low four bits, for
/// `context`, which returns the ssl_context to use) and how the stream is used (high four bits,
/// for `exercise`, which sets its bool argument once it read application data); the rest is what
/// the peer sends. Our side's random source is reset first, so a recorded seed replays the
/// handshake it was recorded with (see record_seeds.cpp). A classified sslstream::error is the
/// expected outcome of hostile bytes; anything else (another exception, a crash, a sanitizer
/// report, a hang) is a finding.
template <class Context, class Exercise>
int one_input(tally& counts, bool we_are_server, const std::uint8_t* data, std::size_t size,
              Context context, Exercise exercise) {
  if (size < 1) return 0;
  unsigned config = data[0] & 0x0f, how = data[0] >> 4;
  sslstream::ssl_context ctx = context(config);
  deterministic_random(we_are_server ? "server" : "client");
  clear_progress();
  bool data_read = false;
  auto [ours, raw] = connection(we_are_server);
  send_as_peer(raw, data + 1, size - 1);
  try {
    auto s = we_are_server ? sslstream::make_ssl_server_stream(std::move(ours), ctx)
                           : sslstream::make_ssl_client_stream(std::move(ours), ctx);
    s.set_timeout(std::chrono::seconds(5));  // never reached: the peer's output is shut
    exercise(s, how, data_read);
  } catch (const sslstream::error&) {
  }
  counts.count(handshake_done, data_read);
  if (handshake_end > 0)
    replay_mutator.remember({reinterpret_cast<const char*>(data), size}, 1 + handshake_end);
  return 0;
}

}  // namespace fuzzing
