// Fuzz target: our SSL client stream fed arbitrary server bytes over a real TCP connection,
// through the public stream API. The first input byte picks the client's configuration (low
// bits, configs.hpp) and how it reads (high bits); the rest is what the "server" sends.
//
// Replay: as in fuzz_server.cpp, the client's random source and clock are deterministic, so a
// seed recorded by record_seeds -- a real server's bytes -- completes the handshake again and
// its tickets, data and close_notify are read. Each input gets a fresh client context: a
// shared one would cache the tickets of earlier inputs and offer them, changing the
// ClientHello the recorded server answered. At exit it prints how many inputs got that far.
//
// Expected failures are sslstream::error exceptions; anything else is a finding.
#include <sslstream/sslstream.hpp>

#include "peer.hpp"

namespace {

using namespace sslstream;

void exercise(ssl_stream& s, unsigned how, bool& data_read) {
  switch (how % 4) {
    case 0:  // the binary API until end of stream
      fuzzing::read_to_end(s, data_read);
      break;
    case 1: {
      std::string line;
      while (std::getline(s, line)) data_read = true;
      break;
    }
    case 2:
      s.do_handshake();
      (void)s.protocol_version();
      (void)s.cipher();
      (void)s.session_reused();
      if (auto c = s.peer_certificate()) {
        (void)c->subject();
        (void)c->subject_alt_names();
      }
      (void)s.peer_chain();
      fuzzing::read_to_end(s, data_read);
      break;
    case 3:
      s << "GET / HTTP/1.0\r\n\r\n" << std::flush;
      s.shutdown(direction::output);
      fuzzing::read_to_end(s, data_read);
      break;
  }
}

fuzzing::tally counts("fuzz_client");

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return fuzzing::one_input(counts, false, data, size, fuzzing::client_context, exercise);
}

/// Mostly mutates what follows the handshake of a seed that completed it (tail_mutator.hpp).
extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size,
                                               std::size_t max_size, unsigned int seed) {
  return fuzzing::replay_mutator.mutate(data, size, max_size, seed);
}
