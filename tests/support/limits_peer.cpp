// limits_peer: the other side of test_server_limits, run as a process of its own so that its
// descriptors, memory and threads are never counted as the server's. Thousands of connections
// come from one thread and one epoll set, not a thread each.
//
//   limits_peer half-hellos PORT N SECONDS [EARLY_MS]
//       N raw TCP connections that each send the first bytes of a real ClientHello and stall.
//       Prints "held N" once all of them are connected and have sent, then (with EARLY_MS)
//       "early E MIN_MS": E of them were dropped sooner than EARLY_MS after their connect() (a
//       server that made room for another client), the rest MIN_MS at the soonest; then
//       "dropped K MIN_MS MAX_MS LAST_AT" when the server has ended K of them (or SECONDS
//       passed): each drop measured from that connection's connect() call, and the moment of the
//       last one (milliseconds of std::chrono::steady_clock, CLOCK_MONOTONIC, which every
//       process on the machine shares).
//   limits_peer tls-idle PORT N CERT_FILE
//       N TLS connections to the server with that certificate, handshaken and then idle. Prints
//       "idle N", then holds them until its stdin ends.
//   limits_peer serve CERT KEY LOOPS WORKERS HEADROOM_MIB
//       An echo server (blocking handlers) whose address space is limited to what it uses now
//       plus HEADROOM_MIB, so that only a few threads (8 MiB stacks) can start. Prints "port P",
//       serves until its stdin ends, then prints "stopped".
// Exit status 0, or 2 with a message on stderr when it could not do its part.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sslstream/sslstream.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "process.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "limits_peer: %s\n", what.c_str());
  std::exit(2);
}

/// Descriptors for `n` connections and some to spare, within the hard limit.
void allow_descriptors(std::size_t n) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  rlim_t want = n + 64;
  if (r.rlim_max != RLIM_INFINITY && r.rlim_max < want)
    fail("needs " + std::to_string(want) + " descriptors, the hard limit is " +
         std::to_string(r.rlim_max) + " (raise it: ulimit -Hn)");
  if (r.rlim_cur < want) {
    r.rlim_cur = want;
    if (::setrlimit(RLIMIT_NOFILE, &r) != 0) fail("setrlimit(RLIMIT_NOFILE) failed");
  }
}

/// The first bytes of a ClientHello exactly as our client sends it: one made over a socket
/// pair and read from the other end.
std::vector<unsigned char> real_client_hello_prefix(std::size_t n) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) fail("socketpair");
  sslstream::ssl_options o;
  o.server_name = "localhost";
  auto client = sslstream::make_ssl_client_stream(sslstream::adopt_socket(sv[0]), o);
  (void)client.try_handshake();  // writes the ClientHello, then wants to read
  std::vector<unsigned char> hello(4096);
  auto got = ::recv(sv[1], hello.data(), hello.size(), MSG_DONTWAIT);
  ::close(sv[1]);
  if (got < static_cast<ssize_t>(n) || hello[0] != 0x16) fail("no ClientHello to copy");
  hello.resize(n);
  return hello;
}

/// Starts a non-blocking connect to 127.0.0.1:port; the descriptor, or fails.
int start_connect(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS)
    fail(std::string("connect: ") + std::strerror(errno));
  return fd;
}

bool connected(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) fail(std::string("connect: ") + std::strerror(err));
  return true;
}

void add(int ep, int fd, std::uint32_t events, std::uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) fail("epoll_ctl add");
}

void modify(int ep, int fd, std::uint32_t events, std::uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) != 0) fail("epoll_ctl mod");
}

// Connects are started at most this many at a time: the listen backlog takes the rest of a
// burst badly (SYNs dropped and retried a second later).
constexpr std::size_t in_flight_limit = 256;

int half_hellos(std::uint16_t port, std::size_t n, int seconds, double early_ms) {
  allow_descriptors(n);
  auto hello = real_client_hello_prefix(64);  // record header, handshake header, a part
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  struct conn {
    int fd = -1;
    clock_type::time_point t0;
    bool up = false, gone = false;
  };
  std::vector<conn> cs(n);
  std::size_t started = 0, up = 0, gone = 0;
  double min_ms = 1e18, max_ms = 0, last_at = 0, on_time_min_ms = 1e18;
  std::size_t early = 0;
  bool said_held = false;
  auto until = clock_type::now() + std::chrono::seconds(seconds);
  std::array<epoll_event, 256> evs;
  while (gone < n && clock_type::now() < until) {
    while (started < n && started - up < in_flight_limit) {
      auto& c = cs[started];
      c.t0 = clock_type::now();
      c.fd = start_connect(port);
      add(ep, c.fd, EPOLLOUT, started);
      ++started;
    }
    if (!said_held && up == n) {
      std::printf("held %zu\n", n - gone);
      std::fflush(stdout);
      said_held = true;
    }
    int k = ::epoll_wait(ep, evs.data(), evs.size(), 50);
    for (int i = 0; i < k; ++i) {
      auto& c = cs[evs[i].data.u64];
      if (!c.up) {
        connected(c.fd);
        if (::send(c.fd, hello.data(), hello.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(hello.size()))
          fail("could not send the ClientHello's first bytes");
        c.up = true;
        ++up;
        modify(ep, c.fd, EPOLLIN | EPOLLRDHUP, evs[i].data.u64);
      } else if (!c.gone) {  // EOF or reset: the server dropped it
        auto now = clock_type::now();
        double ms = std::chrono::duration<double, std::milli>(now - c.t0).count();
        last_at = std::chrono::duration<double, std::milli>(now.time_since_epoch()).count();
        min_ms = std::min(min_ms, ms);
        if (ms < early_ms)
          ++early;
        else
          on_time_min_ms = std::min(on_time_min_ms, ms);
        max_ms = std::max(max_ms, ms);
        c.gone = true;
        ++gone;
        ::close(c.fd);
      }
    }
  }
  if (!said_held) std::printf("held %zu (not all at once)\n", up - gone);
  if (early_ms > 0) std::printf("early %zu %.0f\n", early, gone > early ? on_time_min_ms : 0.0);
  std::printf("dropped %zu %.0f %.0f %.0f\n", gone, gone ? min_ms : 0.0, max_ms, last_at);
  return 0;
}

int tls_idle(std::uint16_t port, std::size_t n, const std::string& pin) {
  allow_descriptors(n);
  sslstream::ssl_options o;
  // The server's memory is measured here, not the client's checks: the handshake pins the
  // test certificate's fingerprint, which costs less CPU than building and verifying a chain.
  o.pinned_sha256 = {sslstream::x509_certificate::load_pem_file(pin).fingerprint_sha256()};
  o.server_name = "localhost";
  auto ctx = sslstream::make_ssl_client_context(o);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  add(ep, 0, EPOLLIN, ~std::uint64_t{0});  // stdin: its end ends us
  std::vector<int> fds(n, -1);
  std::vector<std::unique_ptr<sslstream::ssl_stream>> streams(n);
  std::vector<bool> done(n);
  std::size_t started = 0, pending = 0, finished = 0;
  bool said = false;
  std::array<epoll_event, 256> evs;
  for (;;) {
    while (started < n && pending < in_flight_limit) {
      fds[started] = start_connect(port);
      add(ep, fds[started], EPOLLOUT, started);
      ++started;
      ++pending;
    }
    if (!said && finished == n) {
      std::printf("idle %zu\n", n);
      std::fflush(stdout);
      said = true;
    }
    int k = ::epoll_wait(ep, evs.data(), evs.size(), 1000);
    for (int i = 0; i < k; ++i) {
      auto id = evs[i].data.u64;
      if (id == ~std::uint64_t{0}) {
        char b[64];
        if (::read(0, b, sizeof b) <= 0) return 0;
        continue;
      }
      if (done[id]) {  // a server close: the test sees it in the server's stats
        ::epoll_ctl(ep, EPOLL_CTL_DEL, fds[id], nullptr);
        continue;
      }
      auto& s = streams[id];
      if (!s) {
        connected(fds[id]);
        s = std::make_unique<sslstream::ssl_stream>(
            sslstream::make_ssl_client_stream(sslstream::adopt_socket(fds[id]), ctx));
      }
      sslstream::io_result r;
      try {
        r = s->try_handshake();
      } catch (const std::exception& e) {
        fail(std::string("handshake: ") + e.what());
      }
      if (r.status == sslstream::io_status::done) {
        done[id] = true;
        --pending;
        ++finished;
        modify(ep, fds[id], EPOLLRDHUP, id);
      } else {
        modify(ep, fds[id], r.status == sslstream::io_status::want_write ? EPOLLOUT : EPOLLIN, id);
      }
    }
  }
}

int serve(const std::string& cert, const std::string& key, unsigned loops, std::size_t workers,
          std::size_t headroom_mib) {
  sslstream::ssl_options o;
  o.certificate = cert;
  o.key = key;
  sslstream::server_options so;
  so.threads = loops;
  so.max_workers = workers;
  sslstream::server srv(
      sslstream::make_socket(sslstream::passive{.local_host = "127.0.0.1"}),
      sslstream::make_ssl_server_context(o),
      [](sslstream::ssl_stream& s) {
        std::array<std::byte, 4096> b{};
        s.set_timeout(20s);
        while (auto got = s.read_some(b)) s.write_all(std::span(b).first(got));
      },
      so);
  rlimit r{};
  r.rlim_cur = r.rlim_max =
      (testing_support::status_kib(::getpid(), "VmSize:") + headroom_mib * 1024) * 1024;
  if (::setrlimit(RLIMIT_AS, &r) != 0) fail("setrlimit(RLIMIT_AS) failed");
  srv.start();
  std::printf("port %u\n", srv.local_port());
  std::fflush(stdout);
  char b[64];
  while (::read(0, b, sizeof b) > 0) {
  }
  srv.stop();
  std::printf("stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if ((a.size() == 4 || a.size() == 5) && a[0] == "half-hellos")
      return half_hellos(static_cast<std::uint16_t>(std::stoi(a[1])), std::stoul(a[2]),
                         std::stoi(a[3]), a.size() == 5 ? std::stod(a[4]) : 0.0);
    if (a.size() == 4 && a[0] == "tls-idle")
      return tls_idle(static_cast<std::uint16_t>(std::stoi(a[1])), std::stoul(a[2]), a[3]);
    if (a.size() == 6 && a[0] == "serve")
      return serve(a[1], a[2], static_cast<unsigned>(std::stoul(a[3])), std::stoul(a[4]),
                   std::stoul(a[5]));
  } catch (const std::exception& e) {
    fail(e.what());
  }
  fail("usage: see the comment at the top of tests/support/limits_peer.cpp");
}
