// connect --accept: local plaintext connections, each over a new verified TLS connection.
#include "tunnel.hpp"

#include <sys/socket.h>

#include <condition_variable>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include "backend.hpp"
#include "files.hpp"
#include "relay.hpp"

namespace cli {

using namespace sslstream;

namespace {

/// Local connections served at once; more wait in the listen queue until one ends, so no
/// local program decides how many threads there are.
constexpr std::size_t max_tunnels = 256;

struct tunnel {
  // A constructor, not aggregate initialization through make_shared: clang 14 (the fuzz build)
  // does not have C++20's parenthesized aggregate initialization.
  tunnel(ssl_context c, std::string h, std::uint16_t p, std::chrono::milliseconds t, tls_flags f)
      : ctx(std::move(c)), host(std::move(h)), port(p), connect_timeout(t), tls(std::move(f)) {}
  ssl_context ctx;
  std::string host;
  std::uint16_t port;
  std::chrono::milliseconds connect_timeout;
  tls_flags tls;
  std::mutex m;
  std::condition_variable cv;
  std::size_t active = 0;
};

std::string address(const std::string& host, std::uint16_t port) {
  return (host.find(':') != std::string::npos ? '[' + host + ']' : host) + ':' +
         std::to_string(port);
}

/// Ends the local connection so that its program sees an error (a reset), not a clean end.
void reset(socket_stream& local) {
  linger l{1, 0};
  ::setsockopt(local.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  local.close();
}

void serve_one(tunnel& t, socket_stream local) {
  std::string prefix =
      "sslstream connect: " + address(local.remote_host(), local.remote_port()) + ": ";
  phase at = phase::connect;
  try {
    // As `connect` does: the same context, name, timeouts and checks; a --pin is checked in the
    // handshake, so a wrong server gets nothing from the local program.
    auto sock = make_socket(
        active{.remote_host = t.host, .remote_port = t.port, .connect_timeout = t.connect_timeout});
    at = phase::handshake;
    auto tls = make_ssl_client_stream(std::move(sock), t.ctx);
    tls.set_timeout(t.connect_timeout);
    tls.do_handshake();
    if (t.tls.verbose) print_handshake(tls, prefix + "connect");
    at = phase::transfer;
    int fd = local.native_handle();
    std::string name = "the local connection";
    plain_side p{fd, fd, name, name, [fd] { ::shutdown(fd, SHUT_WR); }, false};
    try {
      auto r = relay(tls, p,
                     {tunnel_idle_limit(t.tls.idle_timeout), t.tls.allow_truncation, t.tls.quiet});
      if (t.tls.verbose)
        std::cerr << prefix << "done: " << r.to_tls << " bytes to the server, " << r.from_tls
                  << " back\n";
      tls.close();
    } catch (...) {
      abort_connection(tls);
      throw;
    }
  } catch (const std::exception& e) {
    auto f = explain("connect", at, e);
    std::cerr << prefix << f.message << " (the local connection is closed)\n";
    reset(local);
  }
}

}  // namespace

void add_accept_flags(CLI::App& connect, accept_flags& a) {
  auto* accept =
      connect
          .add_option("--accept", a.accept,
                      "instead of stdin/stdout: listen on [ADDR:]LOCALPORT (default address "
                      "127.0.0.1, port 0: chosen by the system) and relay each local plaintext "
                      "connection over a new TLS connection, e.g. --accept 8080")
          ->check(CLI::Validator(
              [](const std::string& text) -> std::string {
                try {
                  parse_host_port(text, "127.0.0.1", 0);
                  return {};
                } catch (const std::invalid_argument& e) {
                  return e.what();
                }
              },
              "[ADDR:]PORT"));
  connect.add_option("--port-file", a.port_file, "with --accept: write the local port to FILE")
      ->needs(accept);
}

int serve_tunnel(const accept_flags& a, const std::string& host, std::uint16_t port,
                 std::chrono::milliseconds connect_timeout, const tls_flags& tls) {
  phase at = phase::setup;
  return guarded("connect", at, &tls, [&]() -> int {
    auto local = parse_host_port(a.accept, "127.0.0.1", 0);
    // Built once, before listening: a bad --ca-file or --cert is exit 2 now, not a log line
    // per connection.
    auto t = std::make_shared<tunnel>(make_ssl_client_context(to_options(tls, false)), host, port,
                                      connect_timeout, tls);
    at = phase::connect;
    auto listener = make_socket(passive{.local_host = local.host, .local_port = local.port});
    raise_descriptor_limit();
    // The file first: whoever saw the line on stderr finds it.
    if (!a.port_file.empty())
      write_file_atomically(a.port_file, std::to_string(listener.local_port()) + "\n", true,
                            "--port-file");
    if (!tls.quiet)
      std::cerr << "listening on " << address(local.host, listener.local_port())
                << "\n  (each local connection goes over TLS to " << address(host, port) << ")"
                << std::endl;
    // Said even with -q: a TCP port cannot tell users apart, so the certificate is lent.
    if (!tls.cert.empty())
      std::cerr << "sslstream connect: note: every "
                << (local.host.rfind("127.", 0) == 0 || local.host == "::1" ||
                            local.host == "localhost"
                        ? "local user"
                        : "host")
                << " who can reach " << address(local.host, listener.local_port())
                << " connects as the holder of --cert " << tls.cert
                << " (use --accept only on a machine whose users you trust with it)" << std::endl;
    for (;;) {
      {
        std::unique_lock lk(t->m);
        t->cv.wait(lk, [&] { return t->active < max_tunnels; });
        ++t->active;
      }
      std::optional<socket_stream> s;
      try {
        s = listener.accept_connection();
      } catch (const socket_error& e) {
        // Out of descriptors, say: the connection stays queued; try again shortly.
        std::cerr << "sslstream connect: accepting a local connection: " << e.what() << '\n';
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (!s) {
        std::lock_guard lk(t->m);
        --t->active;
        continue;
      }
      try {
        std::thread([t, c = std::move(*s)]() mutable {
          serve_one(*t, std::move(c));
          std::lock_guard lk(t->m);
          --t->active;
          t->cv.notify_one();
        }).detach();
      } catch (const std::system_error& e) {
        // No thread could start: this connection is refused, the next may be served.
        std::cerr << "sslstream connect: " << e.what() << " (the local connection is closed)\n";
        std::lock_guard lk(t->m);
        --t->active;
      }
    }
  });
}

}  // namespace cli
