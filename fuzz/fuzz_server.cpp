// Fuzz target: our SSL server stream fed arbitrary client bytes over a real TCP connection,
// through the public stream API. The first input byte picks the server's configuration (low
// bits, configs.hpp) and how it is read (high bits); the rest is what the "client" sends.
//
// Replay: the server's random source and clock are deterministic (deterministic_rand.hpp,
// fixed_clock.cpp) and its contexts fixed (configs.hpp), so a seed recorded by record_seeds --
// a real client's bytes -- completes the handshake again here and its application data,
// tickets and close_notify are read: mutations of the bytes after the handshake reach the
// stream code (mostly as records that fail their MAC; fuzz_session drives a real peer for
// well-formed post-handshake records). At exit it prints how many inputs got that far.
//
// Expected failures are sslstream::error exceptions; anything else (another exception, a
// crash, a sanitizer report, a hang past libFuzzer's -timeout) is a finding.
#include <array>
#include <sslstream/sslstream.hpp>

#include "peer.hpp"

namespace {

using namespace sslstream;

ssl_context context(unsigned which) {
  static const std::array<ssl_context, fuzzing::configurations> contexts = [] {
    return std::array{fuzzing::server_context(0), fuzzing::server_context(1),
                      fuzzing::server_context(2), fuzzing::server_context(3),
                      fuzzing::server_context(4), fuzzing::server_context(5),
                      fuzzing::server_context(6), fuzzing::server_context(7)};
  }();
  return contexts[which % contexts.size()];
}

void exercise(ssl_stream& s, unsigned how, bool& data_read) {
  switch (how % 4) {
    case 0:  // the binary API until end of stream
      fuzzing::read_to_end(s, data_read);
      break;
    case 1: {  // the iostream operators, as the tutorial reads
      std::string word;
      while (s >> word) {
        data_read = true;
        s << word << std::flush;
      }
      break;
    }
    case 2:  // an explicit handshake, the details a server looks at, then the data
      s.do_handshake();
      (void)s.server_name();
      (void)s.alpn_protocol();
      (void)s.peer_certificate();
      (void)s.verify_result();
      fuzzing::read_to_end(s, data_read);
      break;
    case 3:  // write first: the handshake happens inside the write; then a half close
      s.write_all(std::as_bytes(std::span("hello", 5)));
      s.shutdown(direction::output);
      fuzzing::read_to_end(s, data_read);
      s.close();
      break;
  }
}

fuzzing::tally counts("fuzz_server");

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return fuzzing::one_input(counts, true, data, size, context, exercise);
}

/// Mostly mutates what follows the handshake of a seed that completed it (tail_mutator.hpp).
extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size,
                                               std::size_t max_size, unsigned int seed) {
  return fuzzing::replay_mutator.mutate(data, size, max_size, seed);
}
