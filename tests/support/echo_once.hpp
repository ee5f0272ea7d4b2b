// Test support: a legitimate client of an echo server, beside whatever a test throws at it.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <sslstream/sslstream.hpp>
#include <string>

namespace testing_support {

/// Under a sanitizer, resident memory and time figures are not the product's: tests loosen or
/// skip their bounds on them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif

/// One line out and its echo back over a new TLS connection to 127.0.0.1:port (20 s limit);
/// the error text, or "".
inline std::string echo_once(std::uint16_t port, const sslstream::ssl_context& ctx) {
  using namespace std::chrono_literals;
  try {
    auto t = sslstream::make_ssl_client_stream(
        sslstream::make_socket(sslstream::active{.remote_host = "127.0.0.1", .remote_port = port}),
        ctx);
    t.set_timeout(20s);
    std::string line = "legitimate\n";
    t.write_all(std::as_bytes(std::span(line)));
    std::string got;
    std::array<std::byte, 64> b{};
    while (got.size() < line.size()) {
      auto n = t.read_some(b);
      if (n == 0) return "the server ended the connection before echoing";
      got.append(reinterpret_cast<const char*>(b.data()), n);
    }
    if (got != line) return "wrong echo: " + got;
    t.close();
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace testing_support
