// Records the seed corpora of fuzz_server and fuzz_client from real handshakes: our client and
// our server talk through a recording relay on loopback, one connection per pair of
// configurations (configs.hpp, the targets' own), and each direction is saved with the byte
// the target reads first (the configuration, and how it reads).
//   record_seeds DIR   ->  DIR/server/<name>, DIR/client/<name>
//
// Replayable: the contexts are built and each side's random source reset exactly as the
// targets do it (deterministic_rand.hpp), with the same fixed clock, so our side of a replayed
// seed draws the same randoms and key shares and the recorded peer's Finished and records
// verify. Running it twice gives identical files. Resumptions are recorded for the server
// only: the client target starts each input with an empty session cache.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sslstream/sslstream.hpp>
#include <thread>

#include "configs.hpp"
#include "deterministic_rand.hpp"

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
    fuzzing::deterministic_random("server");
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
    fuzzing::deterministic_random("client");
    auto c = make_ssl_client_stream(
        make_socket(active{.remote_host = "127.0.0.1", .remote_port = relay_listener.local_port()}),
        client_ctx);
    c << "hello from the client\nand a second line\n" << std::flush;
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

  struct pairing {
    const char* name;
    unsigned server, client;  // configurations, configs.hpp
    unsigned how;             // the high bits of the first byte: how the target reads
  };
  const pairing pairings[] = {
      {"tls13-ecdsa", 0, 0, 0},  {"tls13-insecure", 0, 1, 1}, {"tls12-ecdsa", 1, 2, 2},
      {"tls13-mutual", 2, 3, 3}, {"tls13-alpn", 3, 3, 0},     {"tls13-rsa", 4, 0, 1},
      {"tls12-rsa", 5, 4, 2},    {"tls12-mutual", 6, 6, 3},   {"chacha", 7, 5, 0},
      {"tls13-pinned", 0, 7, 1},
  };
  auto first_byte = [](unsigned config, unsigned how) {
    return static_cast<unsigned char>(config | how << 4);
  };
  for (const auto& p : pairings) {
    auto server_ctx = fuzzing::server_context(p.server);
    auto client_ctx = fuzzing::client_context(p.client);
    auto server_listener = make_socket(passive{.local_host = "127.0.0.1"});
    auto relay_listener = make_socket(passive{.local_host = "127.0.0.1"});
    auto first = converse(server_listener, relay_listener, server_ctx, client_ctx);
    save(dir / "server" / p.name, first_byte(p.server, p.how), first.client_to_server);
    save(dir / "client" / p.name, first_byte(p.client, p.how), first.server_to_client);
    // The same client again: a resumption (TLS 1.3 ticket or 1.2 session ticket).
    auto again = converse(server_listener, relay_listener, server_ctx, client_ctx);
    save(dir / "server" / (std::string(p.name) + "-resumed"), first_byte(p.server, p.how),
         again.client_to_server);
  }
  std::cout << "recorded " << 2 * std::size(pairings) << " conversations in " << dir << "\n";
  return 0;
}
