// Fuzz target: our SSL client stream fed arbitrary server bytes over a real TCP connection,
// through the public stream API. The first input byte picks the client's configuration and how
// it reads; the rest is what the "server" sends. Expected failures are sslstream::error
// exceptions; anything else is a finding.
#include <array>
#include <sslstream/sslstream.hpp>

#include "peer.hpp"

namespace {

using namespace sslstream;

const ssl_context& context(unsigned which) {
  static const std::array<ssl_context, 4> contexts = [] {
    ssl_options verifying;  // the default: verify the chain and the name
    verifying.ca_pem = fuzzing::self_signed_pem();
    verifying.server_name = "localhost";
    auto insecure = verifying;
    insecure.verify = verify_mode::none;
    auto tls12 = insecure;
    tls12.max_version = tls_version::tls1_2;
    auto with_cert = insecure;  // offers a client certificate, ALPN
    with_cert.certificate_pem = fuzzing::self_signed_pem();
    with_cert.alpn = {"h2", "http/1.1"};
    return std::array{make_ssl_client_context(verifying), make_ssl_client_context(insecure),
                      make_ssl_client_context(tls12), make_ssl_client_context(with_cert)};
  }();
  return contexts[which % contexts.size()];
}

void exercise(ssl_stream& s, unsigned how) {
  switch (how % 4) {
    case 0:  // the binary API until end of stream
      fuzzing::read_to_end(s);
      break;
    case 1: {
      std::string line;
      while (std::getline(s, line)) {
      }
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
      break;
    case 3:
      s << "GET / HTTP/1.0\r\n\r\n" << std::flush;
      s.shutdown(direction::output);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return fuzzing::one_input(false, data, size, context, exercise);
}
