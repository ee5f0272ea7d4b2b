// Records the seed corpora of fuzz_server and fuzz_client from real handshakes: our client and
// our server talk through a recording relay on loopback, one connection per configuration, and
// each direction is saved with the configuration byte the target reads first.
//   record_seeds DIR   ->  DIR/server/<name>, DIR/client/<name>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sslstream/sslstream.hpp>
#include <thread>

using namespace sslstream;
namespace fs = std::filesystem;

namespace {

/// Copies `from` to `to` until end of stream, appending every byte to `log`.
void pump(socket_stream& from, socket_stream& to, std::string& log) {
  std::array<std::byte, 16384> buf;
  try {
    while (auto n = from.read_some(buf)) {
      log.append(reinterpret_cast<const char*>(buf.data()), n);
      to.write_all(std::span(buf).first(n));
    }
    to.shutdown(direction::output);
  } catch (const error&) {
  }
}

struct recording {
  std::string client_to_server, server_to_client;
};

/// One conversation: the client writes a line, the server answers, both close.
/// The listeners are the caller's, so that a second conversation goes to the same address and
/// port, which is what the client's session cache is keyed on.
recording converse(passive_socket& server_listener, passive_socket& relay_listener,
                   const ssl_context& server_ctx, const ssl_context& client_ctx) {
  recording r;
  std::thread server([&] {
    auto s = make_ssl_server_stream(server_listener.accept_connection(), server_ctx);
    std::string line;
    std::getline(s, line);
    s << "reply to " << line << "\n" << std::flush;
    s.close();
  });
  std::thread relay([&] {
    auto down = relay_listener.accept_connection();
    auto up = make_socket(
        active{.remote_host = "127.0.0.1", .remote_port = server_listener.local_port()});
    std::thread back([&] { pump(up, down, r.server_to_client); });
    pump(down, up, r.client_to_server);
    back.join();
  });
  {
    auto c = make_ssl_client_stream(
        make_socket(active{.remote_host = "127.0.0.1", .remote_port = relay_listener.local_port()}),
        client_ctx);
    c << "hello from the client\n" << std::flush;
    std::string line;
    std::getline(c, line);
    c.close();
  }
  server.join();
  relay.join();
  return r;
}

void save(const fs::path& file, unsigned char config, const std::string& bytes) {
  std::ofstream f(file, std::ios::binary);
  f.put(static_cast<char>(config));
  f << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: record_seeds DIR\n";
    return 2;
  }
  fs::path dir = argv[1];
  fs::create_directories(dir / "server");
  fs::create_directories(dir / "client");

  auto server_pem = make_self_signed_certificate({});
  self_signed_options rsa_opts;
  rsa_opts.key = self_signed_options::key_type::rsa2048;
  auto rsa_pem = make_self_signed_certificate(rsa_opts);
  auto client_pem = make_self_signed_certificate({.common_name = "client", .alt_names = {}});

  struct variant {
    const char* name;
    ssl_options server, client;
    unsigned char server_config, client_config;  // the first byte each target reads
  };
  ssl_options s, c;
  s.certificate_pem = server_pem;
  c.ca_pem = server_pem + rsa_pem;
  c.server_name = "localhost";
  std::vector<variant> variants;
  variants.push_back({"tls13-ecdsa", s, c, 0x00, 0x01});
  {
    auto s12 = s, c12 = c;
    s12.max_version = c12.max_version = tls_version::tls1_2;
    variants.push_back({"tls12-ecdsa", s12, c12, 0x01, 0x02});
    s12.certificate_pem = rsa_pem;
    variants.push_back({"tls12-rsa", s12, c12, 0x11, 0x12});
  }
  {
    auto sr = s;
    sr.certificate_pem = rsa_pem;
    variants.push_back({"tls13-rsa", sr, c, 0x20, 0x21});
  }
  {
    auto sm = s, cm = c;
    sm.verify = verify_mode::required;
    sm.ca_pem = client_pem;
    cm.certificate_pem = client_pem;
    variants.push_back({"tls13-mutual", sm, cm, 0x02, 0x03});
    sm.max_version = cm.max_version = tls_version::tls1_2;
    variants.push_back({"tls12-mutual", sm, cm, 0x12, 0x13});
  }
  {
    auto sa = s, ca = c;
    sa.alpn = {"h2", "http/1.1"};
    ca.alpn = {"http/1.1"};
    variants.push_back({"tls13-alpn", sa, ca, 0x03, 0x33});
  }
  {
    auto sc = s, cc = c;
    sc.ciphersuites = cc.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
    variants.push_back({"tls13-chacha", sc, cc, 0x10, 0x31});
  }
  for (auto& v : variants) {
    auto server_ctx = make_ssl_server_context(v.server);
    auto client_ctx = make_ssl_client_context(v.client);
    auto server_listener = make_socket(passive{.local_host = "127.0.0.1"});
    auto relay_listener = make_socket(passive{.local_host = "127.0.0.1"});
    auto first = converse(server_listener, relay_listener, server_ctx, client_ctx);
    save(dir / "server" / v.name, v.server_config, first.client_to_server);
    save(dir / "client" / v.name, v.client_config, first.server_to_client);
    // The same client again: a resumption (TLS 1.3 ticket or 1.2 session).
    auto again = converse(server_listener, relay_listener, server_ctx, client_ctx);
    auto resumed = std::string(v.name) + "-resumed";
    save(dir / "server" / resumed, v.server_config, again.client_to_server);
    save(dir / "client" / resumed, v.client_config, again.server_to_client);
  }
  std::cout << "recorded " << 2 * variants.size() << " conversations in " << dir << "\n";
  return 0;
}
