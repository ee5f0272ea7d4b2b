// bench_engine_server: the library's server engine as bench/compare's handshake server, with the
// knobs the CLI does not have, so that rows can be compared on equal terms:
//
//   bench_engine_server CERT.pem PORTFILE [--tickets N] [--threads N] [--reuseport]
//
// Each connection is echoed by a coroutine handler (one request, one reply, as nginx's
// `return 200` and s_server -www). --tickets sets the TLS 1.3 tickets sent per handshake (nginx
// sends 2, we send 1). --threads sets the event loops; with --reuseport each loop is its own
// server on its own SO_REUSEPORT socket instead of every loop sharing one listener
// (EPOLLEXCLUSIVE), which is how the two ways are measured against each other. Runs until
// SIGTERM or SIGINT, then prints the servers' counts on stderr.
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sslstream/sslstream.hpp>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace sslstream;

task<> echo(async_stream& s) {
  std::array<std::byte, 4096> buf;
  while (auto n = co_await s.read_some(buf)) co_await s.write_all(std::span(buf).first(n));
}

/// A loopback listener with SO_REUSEPORT on `port` (0: chosen by the system).
passive_socket reuseport_listener(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4096) != 0) {
    int e = errno;
    ::close(fd);
    throw std::system_error(e, std::generic_category(), "bind/listen with SO_REUSEPORT");
  }
  return adopt_passive_socket(fd);
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::cerr << "usage: bench_engine_server CERT.pem PORTFILE [--tickets N] [--threads N] "
                 "[--reuseport]\n";
    return 2;
  }
  int tickets = 1;
  unsigned threads = 1;
  bool reuseport = false;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tickets" && i + 1 < argc)
      tickets = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc)
      threads = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (a == "--reuseport")
      reuseport = true;
    else
      throw std::invalid_argument("unknown argument " + a);
  }
  // Block the stop signals before any thread starts, so that every thread inherits the mask and
  // only sigwait below sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  ssl_options o;
  o.certificate = argv[1];
  o.min_version = tls_version::tls1_3;
  o.ciphersuites = "TLS_AES_256_GCM_SHA384";
  auto ctx = make_ssl_server_context(o);
  SSL_CTX_set_num_tickets(static_cast<SSL_CTX*>(ctx.native_handle()),
                          static_cast<std::size_t>(tickets));

  std::vector<std::unique_ptr<server>> servers;
  std::uint16_t port = 0;
  unsigned n_servers = reuseport ? threads : 1;
  for (unsigned i = 0; i < n_servers; ++i) {
    passive_socket l =
        reuseport ? reuseport_listener(port) : make_socket(passive{.local_host = "127.0.0.1"});
    port = l.local_port();
    server_options so;
    so.threads = reuseport ? 1 : threads;
    servers.push_back(
        std::make_unique<server>(std::move(l), ctx, server::coroutine_handler(echo), so));
    servers.back()->start();
  }
  {
    std::string tmp = std::string(argv[2]) + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), argv[2]);
  }
  int sig = 0;
  sigwait(&stop, &sig);
  std::uint64_t handshakes = 0, failures = 0;
  for (auto& s : servers) {
    s->stop();
    handshakes += s->stats().handshakes;
    failures += s->stats().handshake_failures;
  }
  std::cerr << "bench_engine_server: " << handshakes << " handshakes, " << failures << " failed, "
            << n_servers << " server(s)\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_engine_server: " << e.what() << "\n";
  return 1;
}
