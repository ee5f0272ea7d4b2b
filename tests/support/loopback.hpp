// Test support: real TCP connections over loopback, and TLS pairs made from them, with the
// server side run on its own thread where a handshake needs both sides at once.
#pragma once

#include <chrono>
#include <exception>
#include <future>
#include <sslstream/sslstream.hpp>
#include <stdexcept>
#include <string>
#include <utility>

#include "process.hpp"

namespace testing_support {

/// The next connection on `listener`, waiting at most `wait`: a peer that never connects (it
/// failed to start, or rejected us before connecting) fails the test at once with `who` named,
/// instead of hanging in accept_connection() until ctest's limit kills it as "Timeout".
inline sslstream::socket_stream accept_within(sslstream::passive_socket& listener,
                                              const std::string& who,
                                              std::chrono::milliseconds wait = 20s) {
  auto s = listener.accept_connection(wait);
  if (!s)
    throw std::runtime_error(who + " did not connect to port " +
                             std::to_string(listener.local_port()) + " within " +
                             std::to_string(wait.count()) + " ms");
  return std::move(*s);
}

/// {accepted (server side), active (client side)} connected over 127.0.0.1.
inline std::pair<sslstream::socket_stream, sslstream::socket_stream> socket_pair() {
  auto listener = sslstream::make_socket(sslstream::passive{.local_host = "127.0.0.1"});
  auto client = sslstream::make_socket(
      sslstream::active{.remote_host = "localhost", .remote_port = listener.local_port()});
  auto server = accept_within(listener, "the loopback client");
  return {std::move(server), std::move(client)};
}

/// Server options with the CA-signed test certificate of the given key type ("rsa" or "ec").
inline sslstream::ssl_options tls_server_options(const std::string& kind = "rsa") {
  sslstream::ssl_options o;
  o.certificate = cert("server-" + kind + ".pem");
  o.key = cert("server-" + kind + ".key");
  return o;
}

/// Client options trusting the test CA (the server name defaults to "localhost").
inline sslstream::ssl_options client_options() {
  sslstream::ssl_options o;
  o.ca_file = cert("ca.pem");
  return o;
}

struct tls_pair {
  sslstream::ssl_stream server;
  sslstream::ssl_stream client;
};

inline tls_pair make_tls_pair(const sslstream::ssl_context& server_ctx,
                              const sslstream::ssl_context& client_ctx) {
  auto [s, c] = socket_pair();
  return {sslstream::make_ssl_server_stream(std::move(s), server_ctx),
          sslstream::make_ssl_client_stream(std::move(c), client_ctx)};
}

inline tls_pair make_tls_pair(const sslstream::ssl_options& so, const sslstream::ssl_options& co) {
  return make_tls_pair(sslstream::make_ssl_server_context(so),
                       sslstream::make_ssl_client_context(co));
}

struct outcome {
  std::exception_ptr server;
  std::exception_ptr client;
};

/// Both handshakes at once (the server on another thread); the errors each side saw.
inline outcome handshake_both(sslstream::ssl_stream& server, sslstream::ssl_stream& client) {
  server.set_timeout(std::chrono::seconds(20));
  client.set_timeout(std::chrono::seconds(20));
  auto srv = std::async(std::launch::async, [&] {
    try {
      server.do_handshake();
    } catch (...) {
      auto e = std::current_exception();
      server.close();  // a failed server must not leave the client waiting
      return e;
    }
    return std::exception_ptr();
  });
  outcome o;
  try {
    client.do_handshake();
  } catch (...) {
    o.client = std::current_exception();
    client.close();
  }
  o.server = srv.get();
  return o;
}

/// Runs `f` and returns the exception it threw as E (fails the test if it threw nothing or
/// something else).
template <class E, class F>
E expect_throw(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e;
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("threw the wrong exception: ") + typeid(e).name() + ": " +
                             e.what());
  }
  throw std::runtime_error("threw nothing");
}

template <class E>
E rethrow_as(const std::exception_ptr& p) {
  return expect_throw<E>([&] {
    if (p) std::rethrow_exception(p);
  });
}

}  // namespace testing_support
