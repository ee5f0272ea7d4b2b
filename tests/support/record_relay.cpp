#include "record_relay.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "raw_connect.hpp"

namespace testing_support {

using clock_type = std::chrono::steady_clock;

hostile_action hostile_action::alert(std::uint8_t level, std::uint8_t description,
                                     std::string name) {
  return {bytes, {0x15, 0x03, 0x03, 0x00, 0x02, level, description}, std::move(name)};
}
hostile_action hostile_action::raw(std::vector<std::uint8_t> data, std::string name) {
  return {bytes, std::move(data), std::move(name)};
}
hostile_action hostile_action::simple(kind k, std::string name) { return {k, {}, std::move(name)}; }

std::vector<hostile_action> all_hostile_actions(bool victim_is_server) {
  std::vector<hostile_action> a;
  a.push_back(hostile_action::alert(1, 0, "plaintext close_notify"));
  // Every fatal alert RFC 8446 §6 and RFC 5246 §7.2 define.
  for (int d : {10, 20, 21, 22, 30, 40, 41,  42,  43,  44,  45,  46,  47,  48,  49,  50, 51,
                60, 70, 71, 80, 86, 90, 100, 109, 110, 111, 112, 113, 114, 115, 116, 120})
    a.push_back(
        hostile_action::alert(2, static_cast<std::uint8_t>(d), "fatal alert " + std::to_string(d)));
  // A handshake message out of place: the other side's first message, empty.
  std::uint8_t type = victim_is_server ? 0x02 : 0x01;  // ServerHello to a server, ClientHello
  a.push_back(hostile_action::raw(
      {0x16, 0x03, 0x03, 0x00, 0x04, type, 0, 0, 0},
      "unexpected " + std::string(victim_is_server ? "ServerHello" : "ClientHello")));
  a.push_back(hostile_action::raw({0x16, 0x03, 0x03, 0x00, 0x04, 20, 0, 0, 0}, "empty Finished"));
  a.push_back(hostile_action::raw({0x14, 0x03, 0x03, 0x00, 0x01, 0x01}, "ChangeCipherSpec"));
  std::vector<std::uint8_t> junk;
  std::uint32_t x = 2463534242u;  // xorshift: the same garbage every run
  for (int i = 0; i < 300; ++i) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    junk.push_back(static_cast<std::uint8_t>(x));
  }
  a.push_back(hostile_action::raw(junk, "garbage"));
  a.push_back(hostile_action::raw({0x17, 0x03, 0x03, 0x40, 0x00, 1, 2, 3}, "cut record"));
  a.push_back(hostile_action::simple(hostile_action::fin, "FIN"));
  a.push_back(hostile_action::simple(hostile_action::rst, "RST"));
  a.push_back(hostile_action::simple(hostile_action::silence, "silence"));
  return a;
}

namespace {

bool send_all(int fd, const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    auto w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

record_relay::record_relay(std::uint16_t target_port, bool victim_is_target, int k,
                           hostile_action action, std::chrono::milliseconds limit)
    : target_port_(target_port),
      victim_is_target_(victim_is_target),
      k_(k),
      action_(std::move(action)),
      limit_(limit) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
      ::listen(listen_fd_, 4) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error(std::string("record_relay: listen: ") + std::strerror(errno));
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { run(); });
}

record_relay::~record_relay() {
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

int record_relay::forwarded() {
  if (thread_.joinable()) thread_.join();
  return forwarded_;
}

bool record_relay::acted() {
  if (thread_.joinable()) thread_.join();
  return acted_;
}

void record_relay::run() {
  const auto until = clock_type::now() + limit_;
  auto left_ms = [&] {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now());
    return static_cast<int>(std::max<long>(0, ms.count()));
  };
  pollfd lp{listen_fd_, POLLIN, 0};
  if (::poll(&lp, 1, left_ms()) != 1) return;
  int victim = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  int honest = raw_connect(target_port_);
  if (victim_is_target_) std::swap(victim, honest);
  if (victim < 0 || honest < 0) {
    if (victim >= 0) ::close(victim);
    if (honest >= 0) ::close(honest);
    return;
  }
  std::vector<std::uint8_t> pending;  // honest bytes not yet a whole record
  auto act = [&] {
    acted_ = true;
    ::close(honest);  // the honest peer is out of the conversation from here on
    honest = -1;
    if (action_.what == hostile_action::rst) {
      linger l{1, 0};  // close with RST
      ::setsockopt(victim, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      ::close(victim);
      victim = -1;
      return;
    }
    if (action_.what == hostile_action::bytes)
      send_all(victim, action_.data.data(), action_.data.size());
    if (action_.what == hostile_action::fin) ::shutdown(victim, SHUT_WR);
  };
  if (k_ == 0) act();
  // Relay until the action, then swallow what the victim sends until it closes (or the limit).
  std::uint8_t buf[65536];
  while (victim >= 0 && left_ms() > 0) {
    pollfd p[2] = {{victim, POLLIN, 0}, {honest, POLLIN, 0}};
    int n = ::poll(p, honest >= 0 ? 2 : 1, std::min(left_ms(), 100));
    if (n < 0 && errno != EINTR) break;
    if (p[0].revents) {
      auto r = ::recv(victim, buf, sizeof buf, 0);
      if (r <= 0) break;  // the victim gave up: done
      if (honest >= 0 && !send_all(honest, buf, static_cast<std::size_t>(r))) {
        ::close(honest);
        honest = -1;
      }
    }
    if (honest >= 0 && p[1].revents) {
      auto r = ::recv(honest, buf, sizeof buf, 0);
      if (r <= 0) {  // the honest peer ended: pass its end on
        ::shutdown(victim, SHUT_WR);
        ::close(honest);
        honest = -1;
        continue;
      }
      pending.insert(pending.end(), buf, buf + r);
      // Forward whole records one by one, acting after the k-th.
      while (honest >= 0 && pending.size() >= 5) {
        std::size_t len = 5 + (std::size_t{pending[3]} << 8 | pending[4]);
        if (pending.size() < len) break;
        send_all(victim, pending.data(), len);
        pending.erase(pending.begin(), pending.begin() + static_cast<long>(len));
        if (++forwarded_ == k_) act();
      }
    }
  }
  if (honest >= 0) ::close(honest);
  if (victim >= 0) ::close(victim);
}

}  // namespace testing_support
