// Test support: a listening address that neither accepts nor refuses. Its queue is full and
// nothing accepts, so the kernel drops further SYNs: a connect to it hangs, as to a host
// behind a dead route — on loopback, without touching the network.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <sslstream/sslstream.hpp>
#include <string>
#include <vector>

namespace testing_support {

struct silent_listener {
  sslstream::passive_socket listener;
  std::vector<int> fillers;

  /// On `host` ("127.0.0.1" or "::1") at `port` (0 = chosen by the OS).
  explicit silent_listener(const std::string& host, std::uint16_t port = 0)
      : listener(sslstream::make_socket(
            sslstream::passive{.local_host = host, .local_port = port, .backlog = 0})) {
    sockaddr_storage a{};
    socklen_t len = 0;
    if (host.find(':') != std::string::npos) {
      auto* six = reinterpret_cast<sockaddr_in6*>(&a);
      six->sin6_family = AF_INET6;
      ::inet_pton(AF_INET6, host.c_str(), &six->sin6_addr);
      six->sin6_port = htons(listener.local_port());
      len = sizeof *six;
    } else {
      auto* four = reinterpret_cast<sockaddr_in*>(&a);
      four->sin_family = AF_INET;
      ::inet_pton(AF_INET, host.c_str(), &four->sin_addr);
      four->sin_port = htons(listener.local_port());
      len = sizeof *four;
    }
    // A backlog of 0 holds one or two connections; eight fill it on any kernel.
    for (int i = 0; i < 8; ++i) {
      int fd = ::socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), len);
      fillers.push_back(fd);
    }
  }
  silent_listener(const silent_listener&) = delete;
  silent_listener& operator=(const silent_listener&) = delete;
  ~silent_listener() {
    for (int fd : fillers) ::close(fd);
  }
};

}  // namespace testing_support
