// listen --forward HOST:PORT: each connection's plaintext over a new TCP connection to a
// backend and back (a TLS terminator, stunnel's server mode). Also the flags of both backends.
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "backend.hpp"
#include "relay.hpp"

namespace cli {

using namespace sslstream;

namespace {

/// How long a backend has to accept: a listener that takes the connection but never accepts
/// it still completes TCP's handshake, so this bounds only one that does not answer at all.
constexpr std::chrono::milliseconds backend_connect_timeout{10000};

std::string address(const std::string& host, std::uint16_t port) {
  return (host.find(':') != std::string::npos ? '[' + host + ']' : host) + ':' +
         std::to_string(port);
}

/// Ends a plain TCP connection so that its peer sees an error (a reset), not a clean end.
void reset(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace

std::string connection_prefix(ssl_stream& s) {
  return "sslstream listen: " + address(s.remote_host(), s.remote_port()) + ": ";
}

host_port parse_host_port(const std::string& text, const std::string& default_host,
                          unsigned min_port) {
  std::string host = default_host, port = text;
  if (auto colon = text.rfind(':'); colon != std::string::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    else if (host.find(':') != std::string::npos)
      throw std::invalid_argument("'" + text + "': write an IPv6 address in brackets: [" + host +
                                  "]:" + port);
    if (host.empty()) throw std::invalid_argument("'" + text + "' has no host before the ':'");
  } else if (default_host.empty()) {
    throw std::invalid_argument("'" + text + "' is not HOST:PORT (the port is missing)");
  }
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || errno == ERANGE || v < static_cast<long>(min_port) ||
      v > 65535)
    throw std::invalid_argument("'" + text + "': the port must be a number from " +
                                std::to_string(min_port) + " to 65535, not '" + port + "'");
  return {host, static_cast<std::uint16_t>(v)};
}

void add_backend_flags(CLI::App& listen, backend_flags& b, CLI::Option* echo) {
  auto checked = [](const std::string& text) -> std::string {
    try {
      parse_host_port(text, "", 1);
      return {};
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
  };
  auto* forward =
      listen
          .add_option("--forward", b.forward,
                      "relay each connection's plaintext to a new TCP connection to HOST:PORT "
                      "(a TLS terminator), e.g. --forward 127.0.0.1:8080")
          ->check(CLI::Validator(checked, "HOST:PORT"))
          ->excludes(echo);
  listen
      .add_option("--exec", b.exec,
                  "run `sh -c CMD` for each connection, its stdin/stdout being the plaintext "
                  "(inetd style; SSLSTREAM_PEER_* in its environment), e.g. --exec 'cat'")
      ->check(CLI::Validator(
          [](const std::string& cmd) -> std::string {
            return cmd.find_first_not_of(" \t\n") == std::string::npos
                       ? "is empty: give the command to run for each connection"
                       : "";
          },
          "CMD"))
      ->excludes(echo)
      ->excludes(forward);
}

connection_handler make_backend_handler(const backend_flags& b, const tls_flags& tls) {
  if (!b.forward.empty()) {
    auto to = parse_host_port(b.forward, "", 1);
    return [to, &tls](ssl_stream& s) { return forward_connection(s, to, tls); };
  }
  if (!b.exec.empty())
    return [cmd = b.exec, &tls](ssl_stream& s) { return exec_connection(s, cmd, tls); };
  return {};
}

int forward_connection(ssl_stream& s, const host_port& to, const tls_flags& tls) {
  std::string prefix, backend = "the backend " + address(to.host, to.port);
  phase at = phase::connect;
  std::optional<socket_stream> b;
  try {
    prefix = connection_prefix(s);
    b = make_socket(active{.remote_host = to.host,
                           .remote_port = to.port,
                           .connect_timeout = backend_connect_timeout});
  } catch (const std::exception& e) {
    // The client learns no more than that its connection ended: a clean close, as a backend
    // that accepted and closed at once would look. The reason is for the operator.
    std::cerr << prefix << "cannot reach " << backend << ": " << e.what()
              << " (the client's connection is closed)\n";
    try {
      s.close();
    } catch (...) {
    }
    return no_connect;
  }
  int fd = b->native_handle();
  at = phase::transfer;
  try {
    plain_side p{fd, fd, backend, backend, [fd] { ::shutdown(fd, SHUT_WR); }, false};
    auto r = relay(s, p, {tunnel_idle_limit(tls.idle_timeout), tls.allow_truncation, tls.quiet});
    if (r.stopped) {
      // The server is stopping: neither side may take the cut for a clean end.
      reset(fd);
      abort_connection(s);
      if (tls.verbose) std::cerr << prefix << "cut: the server is stopping\n";
      return ok;
    }
    if (tls.verbose) {
      std::cerr << prefix << "done: " << r.to_tls << " bytes to the client, " << r.from_tls
                << " to " << backend;
      if (r.dropped) std::cerr << ", " << r.dropped << " dropped (the backend had stopped reading)";
      std::cerr << '\n';
    }
    s.close();
    return ok;
  } catch (const std::exception& e) {
    // Either side failing cuts both: a clean end would pass a cut-short stream for a whole one.
    reset(fd);
    abort_connection(s);
    auto f = explain("listen", at, e);
    std::cerr << prefix << f.message << '\n';
    return f.status;
  }
}

}  // namespace cli
