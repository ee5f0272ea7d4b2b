// Fuzz target: a scenario fuzzer for what follows the handshake. Our SSL stream (server or
// client) talks over a real loopback TCP connection to a real OpenSSL peer in the same process
// (scenario_peer.hpp), which completes the handshake and then plays the input as a script of
// plaintext commands: application data of any size and record size, KeyUpdate (and floods),
// tickets (and floods), renegotiation, close_notify, encrypted alerts, corruption, garbage,
// truncation at any byte, FIN, RST. The records are well formed and correctly encrypted unless
// the script damages them, so nearly every input reaches the stream code after the handshake.
//
// The first byte is the mode:
//   bit 0     our role: 0 server (the peer is a client), 1 client
//   bits 1-3  our configuration (configs.hpp); the peer is set up to match it
//   bits 4-5  how we read: 0 read_some, 1 operator>> (echoing each word back unless a writer
//             thread runs), 2 std::getline, 3 do_handshake and the accessors, then read_some
//             in 7-byte pieces
//   bit 6     a second thread writes concurrently (then half-closes) while we read; with
//             how 3 it also calls the accessors between its writes
//   bit 7     the peer offers at most TLS 1.2
// The rest is the peer's script (scenario_peer.hpp lists the commands; make-session-seeds.sh
// writes the seeds). Random sources are deterministic per thread (deterministic_rand.hpp).
//
// Expected failures are sslstream::error exceptions; anything else (another exception, a
// crash, a sanitizer report, a hang past libFuzzer's -timeout) is a finding.
#include <array>
#include <optional>
#include <sslstream/sslstream.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "peer.hpp"
#include "scenario_peer.hpp"

namespace {

using namespace sslstream;

ssl_context server_context(unsigned which) {
  static std::array<std::optional<ssl_context>, fuzzing::configurations> made;
  auto& c = made[which % made.size()];
  if (!c) c = fuzzing::server_context(which);
  return *c;
}

/// What a program looks at about a connection; each accessor takes the stream's lock, so
/// they may run beside a reader and a writer.
void look_at(ssl_stream& s) {
  (void)s.protocol_version();
  (void)s.cipher();
  (void)s.alpn_protocol();
  (void)s.session_reused();
  (void)s.verify_result();
  (void)s.peer_certificate();
  std::ostringstream description;
  description << s;
}

/// Reads until end of stream (or the error that ends it) the way `how` says.
void read(ssl_stream& s, unsigned how, bool may_write, bool& data_read) {
  switch (how) {
    case 0: fuzzing::read_to_end(s, data_read); break;
    case 1: {
      std::string word;
      while (s >> word) {
        data_read = true;
        if (may_write) s << word << '\n' << std::flush;
      }
      break;
    }
    case 2: {
      std::string line;
      while (std::getline(s, line)) data_read = true;
      break;
    }
    case 3:
      s.do_handshake();
      look_at(s);
      fuzzing::read_to_end(s, data_read, 7);
      break;
  }
}

/// The concurrent writer: a few writes, then a half close, while the other thread reads; with
/// `look`, it calls the accessors between the writes too.
void write_concurrently(ssl_stream& s, bool look) {
  fuzzing::deterministic_random("writer");
  try {
    std::string chunk(1000, 'w');
    chunk.back() = '\n';
    for (int i = 0; i < 3; ++i) {
      s.write_all(std::as_bytes(std::span(chunk)));
      if (look) look_at(s);
    }
    s.shutdown(direction::output);
  } catch (const sslstream::error&) {
  }
}

fuzzing::tally counts("fuzz_session");

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const unsigned mode = data[0], config = (mode >> 1) & 7, how = (mode >> 4) & 3;
  const bool we_are_server = (mode & 1) == 0, writer = (mode & 0x40) != 0;

  std::unique_ptr<SSL, fuzzing::ssl_free_deleter> peer(
      SSL_new(fuzzing::peer_context(!we_are_server, config, (mode & 0x80) != 0)));
  if (we_are_server) {
    SSL_set_connect_state(peer.get());
    SSL_set_tlsext_host_name(peer.get(), "localhost");
  } else {
    SSL_set_accept_state(peer.get());
  }
  ssl_context ctx = we_are_server ? server_context(config) : fuzzing::client_context(config);
  fuzzing::clear_progress();
  bool data_read = false;

  auto [ours, raw_end] = fuzzing::connection(we_are_server);
  socket_stream& raw = raw_end;  // a lambda may not capture a structured binding (C++17)
  raw.set_timeout(std::chrono::seconds(5));  // bounds the peer's every wait on our side
  std::thread peer_thread([&, script = std::span(data + 1, size - 1)] {
    fuzzing::deterministic_random("peer");
    fuzzing::run_peer(peer.get(), raw, script);
  });
  fuzzing::deterministic_random("ours");
  try {
    auto s = we_are_server ? make_ssl_server_stream(std::move(ours), ctx)
                           : make_ssl_client_stream(std::move(ours), ctx);
    s.set_timeout(std::chrono::seconds(5));  // never reached: the peer always ends its output
    std::thread second;
    if (writer) second = std::thread(write_concurrently, std::ref(s), how == 3);
    try {
      read(s, how, !writer, data_read);
    } catch (const sslstream::error&) {
    }
    if (second.joinable()) second.join();
    s.close();
  } catch (const sslstream::error&) {
  }
  peer_thread.join();
  counts.count(fuzzing::handshake_done, data_read);
  return 0;
}
