// Test support: a hostile man in the middle at the TLS record level. It relays whole records
// between the stream under test (the victim) and an honest TLS peer, and after the honest
// peer's k-th record it stops relaying and does one scripted thing to the victim instead: a
// plaintext alert, an unexpected handshake message, a ChangeCipherSpec, garbage, FIN, RST or
// silence. No TLS library decides what it sends; the bytes are written out below. Sweeping k
// from 0 to the end of a conversation attacks every point before, inside and after each flight.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace testing_support {

struct hostile_action {
  enum kind { bytes, fin, rst, silence } what = silence;
  std::vector<std::uint8_t> data;  ///< for `bytes`: written raw, then silence
  std::string name;

  static hostile_action alert(std::uint8_t level, std::uint8_t description, std::string name);
  static hostile_action raw(std::vector<std::uint8_t> data, std::string name);
  static hostile_action simple(kind k, std::string name);
};

/// Every action of the kit: close_notify and each fatal alert in plaintext, an unexpected
/// handshake message, a ChangeCipherSpec, garbage, FIN, RST and silence.
std::vector<hostile_action> all_hostile_actions(bool victim_is_server);

class record_relay {
 public:
  /// Listens on 127.0.0.1 (port()) and, once a connection arrives there, connects to
  /// `target_port`. The victim is the side at `target_port` when `victim_is_target` (a server
  /// under test), else the side that connects (a client under test). After `k` records from
  /// the honest side it acts instead. Everything ends within `limit`.
  record_relay(std::uint16_t target_port, bool victim_is_target, int k, hostile_action action,
               std::chrono::milliseconds limit);
  ~record_relay();
  record_relay(const record_relay&) = delete;
  record_relay& operator=(const record_relay&) = delete;

  std::uint16_t port() const { return port_; }
  /// Waits for the relay to end; how many honest records it forwarded, and whether it acted.
  int forwarded();
  bool acted();

 private:
  void run();
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::uint16_t target_port_;
  bool victim_is_target_;
  int k_;
  hostile_action action_;
  std::chrono::milliseconds limit_;
  int forwarded_ = 0;
  bool acted_ = false;
  std::thread thread_;
};

}  // namespace testing_support
