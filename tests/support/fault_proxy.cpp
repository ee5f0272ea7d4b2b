#include "fault_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace testing_support {

namespace {

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), std::string("fault_proxy: ") + what);
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// Closes with an RST instead of a FIN: linger on, zero seconds.
void close_with_reset(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

bool write_fully(int fd, const unsigned char* p, std::size_t n) {
  while (n > 0) {
    auto w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

fault_proxy::fault_proxy(std::uint16_t server_port, fault f)
    : server_port_(server_port), fault_(f) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("socket");
  auto a = loopback(0);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("bind");
  if (::listen(listen_fd_, 4) != 0) fail("listen");
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  if (::pipe2(stop_, O_CLOEXEC) != 0) fail("pipe");
  thread_ = std::thread([this] { run(); });
}

fault_proxy::~fault_proxy() {
  char c = 0;
  (void)!::write(stop_[1], &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(stop_[0]);
  ::close(stop_[1]);
}

void fault_proxy::run() {
  pollfd first[2] = {{listen_fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
  while (::poll(first, 2, -1) < 0 && errno == EINTR) {
  }
  if (first[1].revents) return;
  int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (client < 0) return;
  int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto a = loopback(server_port_);
  if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close_with_reset(client);
    if (server >= 0) ::close(server);
    return;
  }
  set_nodelay(client);
  set_nodelay(server);

  // Index 0: client -> server, 1: server -> client.
  int from[2] = {client, server}, to[2] = {server, client};
  bool open[2] = {true, true};
  auto end_both = [&](bool reset) {
    if (reset) {
      close_with_reset(client);
      close_with_reset(server);
    } else {
      ::close(client);
      ::close(server);
    }
    client = server = -1;
  };
  std::vector<unsigned char> buf(65536);
  int faulted = static_cast<int>(fault_.where);
  while ((open[0] || open[1]) && client >= 0) {
    pollfd p[3] = {{open[0] ? from[0] : -1, POLLIN, 0},
                   {open[1] ? from[1] : -1, POLLIN, 0},
                   {stop_[0], POLLIN, 0}};
    if (::poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[2].revents) break;
    for (int d = 0; d < 2 && client >= 0; ++d) {
      if (!open[d] || !p[d].revents) continue;
      auto n = ::recv(from[d], buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // End of this direction (or a reset): pass it on as a half close.
        ::shutdown(to[d], SHUT_WR);
        open[d] = false;
        continue;
      }
      std::size_t len = static_cast<std::size_t>(n), done = relayed_[d];
      bool here = d == faulted;
      bool ending = here && (fault_.what == fault::cut || fault_.what == fault::reset) &&
                    done + len >= fault_.offset;
      if (ending) len = fault_.offset - done;  // forward exactly up to the offset, then end
      if (here && fault_.what == fault::flip && fault_.offset >= done && fault_.offset < done + len)
        buf[fault_.offset - done] ^= static_cast<unsigned char>(1u << (fault_.offset % 8));
      bool ok = true;
      if (fault_.what == fault::split || fault_.what == fault::delay) {
        std::size_t piece = fault_.what == fault::split ? 1 : 512;
        for (std::size_t i = 0; ok && i < len; i += piece) {
          if (fault_.what == fault::delay) std::this_thread::sleep_for(fault_.pause);
          ok = write_fully(to[d], buf.data() + i, std::min(piece, len - i));
        }
      } else {
        ok = write_fully(to[d], buf.data(), len);
      }
      relayed_[d] += len;
      if (ending) {
        end_both(fault_.what == fault::reset);
      } else if (!ok) {
        ::shutdown(from[d], SHUT_RD);
        open[d] = false;
      }
    }
  }
  if (client >= 0) end_both(false);
}

}  // namespace testing_support
