// Fuzz target: our SSL server stream fed arbitrary client bytes over a real TCP connection,
// through the public stream API. The first input byte picks the server's configuration and
// how it is read; the rest is what the "client" sends. Expected failures are sslstream::error
// exceptions; anything else (another exception, a crash, a sanitizer report, a hang past
// libFuzzer's -timeout) is a finding.
#include <array>
#include <sslstream/sslstream.hpp>

#include "peer.hpp"

namespace {

using namespace sslstream;

const ssl_context& context(unsigned which) {
  static const std::array<ssl_context, 4> contexts = [] {
    ssl_options base;
    base.certificate_pem = fuzzing::self_signed_pem();
    auto tls12 = base;
    tls12.max_version = tls_version::tls1_2;
    auto mutual = base;
    mutual.verify = verify_mode::required;
    mutual.ca_pem = fuzzing::self_signed_pem();
    auto alpn = base;
    alpn.alpn = {"h2", "http/1.1"};
    alpn.min_version = tls_version::tls1_3;
    return std::array{make_ssl_server_context(base), make_ssl_server_context(tls12),
                      make_ssl_server_context(mutual), make_ssl_server_context(alpn)};
  }();
  return contexts[which % contexts.size()];
}

void exercise(ssl_stream& s, unsigned how) {
  switch (how % 4) {
    case 0:  // the binary API until end of stream
      fuzzing::read_to_end(s);
      break;
    case 1: {  // the iostream operators, as the tutorial reads
      std::string word;
      while (s >> word) s << word << std::flush;
      break;
    }
    case 2:  // an explicit handshake, then the details a server looks at
      s.do_handshake();
      (void)s.server_name();
      (void)s.alpn_protocol();
      (void)s.peer_certificate();
      (void)s.verify_result();
      break;
    case 3:  // write first: the handshake happens inside the write
      s.write_all(std::as_bytes(std::span("hello", 5)));
      s.close();
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return fuzzing::one_input(true, data, size, context, exercise);
}
