// Test support: a TCP proxy on loopback that sits between a client and a server and damages the
// bytes it relays in one chosen way — every write split into 1-byte pieces, a delay before each
// piece, the connection cut or reset (RST) after a given number of bytes, or one bit flipped at
// a given offset. Plain POSIX sockets, independent of the library under test. One connection
// per proxy; the destructor ends it and joins its thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

namespace testing_support {

enum class flow { client_to_server, server_to_client };

struct fault {
  enum kind { none, split, delay, cut, flip, reset } what = none;
  flow where = flow::client_to_server;  ///< cut, flip, reset: which direction
  std::size_t offset = 0;               ///< cut/reset after this many bytes; flip this byte
  std::chrono::milliseconds pause{1};   ///< delay: before each piece
};

class fault_proxy {
 public:
  /// Listens on 127.0.0.1 (port chosen by the OS) and relays one connection to `server_port`.
  fault_proxy(std::uint16_t server_port, fault f);
  fault_proxy(const fault_proxy&) = delete;
  fault_proxy& operator=(const fault_proxy&) = delete;
  ~fault_proxy();

  std::uint16_t port() const { return port_; }
  /// Bytes relayed so far in each direction (after the proxy has ended: the totals).
  std::size_t relayed(flow f) const { return relayed_[static_cast<int>(f)]; }

 private:
  void run();
  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::uint16_t server_port_;
  fault fault_;
  std::atomic<std::size_t> relayed_[2] = {0, 0};
  std::thread thread_;
};

}  // namespace testing_support
