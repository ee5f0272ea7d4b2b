// sslstream bench: throughput, handshakes, round trips and memory per connection, measured on
// loopback through the public API, each beside its baseline from the same run.
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "cli.hpp"

namespace cli {

using namespace sslstream;
using clock_type = std::chrono::steady_clock;

namespace {

struct bench_flags {
  bool quick = false;
  bool json = false;
  std::string only;
};

struct figure {
  std::string group, name, unit;
  double value;
  std::string note;
};

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void progress(const std::string& what) {
  static const bool tty = ::isatty(2);
  if (tty) std::cerr << "\r\033[K  measuring " << what << "..." << std::flush;
}

struct identities {
  std::string rsa = make_self_signed_certificate({.key = self_signed_options::key_type::rsa2048});
  std::string ec = make_self_signed_certificate({.key = self_signed_options::key_type::ec256});
};

ssl_context server_ctx(const std::string& pem, tls_version v) {
  ssl_options o;
  o.certificate_pem = pem;
  o.max_version = v;
  o.min_version = v;
  // The suite Python's ssl, socat and nginx negotiate by default, so that bench/compare's rows
  // all run the same cipher (AES-128-GCM is about 5% faster and would flatter us).
  o.ciphersuites = "TLS_AES_256_GCM_SHA384";
  o.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
  return make_ssl_server_context(o);
}

ssl_context client_ctx(const std::string& pem, tls_version v) {
  ssl_options o;
  o.ca_pem = pem;
  o.max_version = v;
  o.min_version = v;
  return make_ssl_client_context(o);
}

/// A connected TLS pair over loopback, handshake done.
std::pair<ssl_stream, ssl_stream> tls_pair(passive_socket& l, const ssl_context& s,
                                           const ssl_context& c) {
  auto fut = std::async(std::launch::async, [&] {
    auto srv = make_ssl_server_stream(l.accept_connection(), s);
    srv.do_handshake();
    return srv;
  });
  auto cli = make_ssl_client_stream(
      make_socket(active{.remote_host = "localhost", .remote_port = l.local_port()}), c);
  cli.do_handshake();
  return {fut.get(), std::move(cli)};
}

template <class Out, class In>
double bulk(Out& out, In& in, std::size_t total, bool iostream_path) {
  auto reader = std::async(std::launch::async, [&] {
    std::vector<char> buf(1 << 18);
    std::size_t got = 0;
    while (got < total) {
      std::size_t n;
      if (iostream_path) {
        in.read(buf.data(), static_cast<std::streamsize>(std::min(buf.size(), total - got)));
        n = static_cast<std::size_t>(in.gcount());
      } else {
        n = in.read_some(std::as_writable_bytes(std::span(buf)));
      }
      if (n == 0) break;
      got += n;
    }
    return got;
  });
  std::vector<char> chunk(1 << 20, 'b');
  auto t0 = clock_type::now();
  for (std::size_t sent = 0; sent < total; sent += chunk.size()) {
    if (iostream_path)
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    else
      out.write_all(std::as_bytes(std::span(chunk)));
  }
  out.flush();
  // A figure for bytes that never arrived would be no figure at all.
  if (auto got = reader.get(); got != total)
    throw std::runtime_error("bulk: " + std::to_string(got) + " of " + std::to_string(total) +
                             " bytes arrived");
  return static_cast<double>(total) / seconds_since(t0) / 1e9;
}

void bench_bulk(std::vector<figure>& out, const identities& id, bool quick) {
  std::size_t total = quick ? (256u << 20) : (2048u << 20);
  auto l = make_socket(passive{.local_host = "127.0.0.1"});
  auto s = server_ctx(id.ec, tls_version::tls1_3);
  auto c = client_ctx(id.ec, tls_version::tls1_3);
  {
    progress("bulk, plain TCP");
    auto cli = make_socket(active{.remote_host = "127.0.0.1", .remote_port = l.local_port()});
    auto srv = l.accept_connection();
    out.push_back(
        {"bulk", "plain socket_stream (baseline)", "GB/s", bulk(cli, srv, total, false), ""});
  }
  auto [srv, cli] = tls_pair(l, s, c);
  progress("bulk, TLS client to server");
  out.push_back({"bulk", "TLS 1.3 AES-256-GCM, client->server, binary API", "GB/s",
                 bulk(cli, srv, total, false), ""});
  progress("bulk, TLS server to client");
  out.push_back({"bulk", "TLS 1.3 AES-256-GCM, server->client, binary API", "GB/s",
                 bulk(srv, cli, total, false), ""});
  progress("bulk, TLS iostream");
  out.push_back({"bulk", "TLS 1.3 AES-256-GCM, client->server, iostream write/read", "GB/s",
                 bulk(cli, srv, total, true), ""});
}

void bench_handshakes(std::vector<figure>& out, const identities& id, bool quick) {
  int n = quick ? 100 : 1000;
  for (auto v : {tls_version::tls1_3, tls_version::tls1_2}) {
    for (bool rsa : {true, false}) {
      for (bool resume : {false, true}) {
        std::string name = std::string(v == tls_version::tls1_3 ? "TLS 1.3" : "TLS 1.2") +
                           (rsa ? " RSA-2048" : " ECDSA P-256") + (resume ? " resumed" : " full");
        progress("handshakes, " + name);
        auto l = make_socket(passive{.local_host = "127.0.0.1"});
        auto s = server_ctx(rsa ? id.rsa : id.ec, v);
        auto c = client_ctx(rsa ? id.rsa : id.ec, v);
        if (resume) {  // prime the client's session cache
          auto [a, b] = tls_pair(l, s, c);
          a << 'x' << std::flush;
          char ch;
          b >> ch;
        }
        std::atomic<double> server_cpu{0};
        auto server = std::async(std::launch::async, [&] {
          double cpu0 = thread_cpu_seconds();
          for (int i = 0; i < n; ++i) {
            auto st = make_ssl_server_stream(l.accept_connection(), s);
            st.do_handshake();
            st << 'x' << std::flush;  // lets the client read the TLS 1.3 ticket
            st.close();
          }
          server_cpu = thread_cpu_seconds() - cpu0;
        });
        int reused = 0;
        // A full handshake needs a client with no session to offer: a fresh client context each
        // time (its cost falls on the client, not on the server CPU measured here).
        std::vector<ssl_context> fresh;
        if (!resume)
          for (int i = 0; i < n; ++i) fresh.push_back(client_ctx(rsa ? id.rsa : id.ec, v));
        auto t0 = clock_type::now();
        for (int i = 0; i < n; ++i) {
          auto cl = make_ssl_client_stream(
              make_socket(active{.remote_host = "127.0.0.1", .remote_port = l.local_port()}),
              resume ? c : fresh[static_cast<std::size_t>(i)]);
          char ch;
          cl >> ch;
          reused += cl.session_reused();
          cl.close();
        }
        server.get();
        double wall = seconds_since(t0);
        out.push_back({"handshakes", name + ", per second (both sides on this machine)", "/s",
                       n / wall, std::to_string(reused) + "/" + std::to_string(n) + " resumed"});
        out.push_back(
            {"handshakes", name + ", per server CPU-second", "/cpu-s", n / server_cpu.load(), ""});
      }
    }
  }
}

template <class A, class B>
double ping_pong(A& a, B& b, int rounds) {
  auto echo = std::async(std::launch::async, [&] {
    std::array<std::byte, 64> m{};
    for (int i = 0; i < rounds; ++i) {
      std::size_t got = 0;
      while (got < m.size()) got += b.read_some(std::span(m).subspan(got));
      b.write_all(m);
    }
  });
  std::array<std::byte, 64> m{};
  auto t0 = clock_type::now();
  for (int i = 0; i < rounds; ++i) {
    a.write_all(m);
    std::size_t got = 0;
    while (got < m.size()) got += a.read_some(std::span(m).subspan(got));
  }
  double secs = seconds_since(t0);
  echo.get();
  return rounds / secs;
}

void bench_latency(std::vector<figure>& out, const identities& id, bool quick) {
  int rounds = quick ? 5000 : 100000;
  auto l = make_socket(passive{.local_host = "127.0.0.1"});
  progress("64-byte round trips, plain");
  auto pc = make_socket(active{.remote_host = "127.0.0.1", .remote_port = l.local_port()});
  auto ps = l.accept_connection();
  out.push_back({"round trips", "64 bytes, plain socket_stream (baseline)", "/s",
                 ping_pong(pc, ps, rounds), ""});
  progress("64-byte round trips, TLS");
  auto [srv, cli] =
      tls_pair(l, server_ctx(id.ec, tls_version::tls1_3), client_ctx(id.ec, tls_version::tls1_3));
  out.push_back({"round trips", "64 bytes, TLS 1.3", "/s", ping_pong(cli, srv, rounds), ""});
}

// Heap bytes in use: unlike RSS, not hidden by memory an earlier benchmark freed and malloc kept.
double heap_kib() {
  struct mallinfo2 m = mallinfo2();
  return static_cast<double>(m.uordblks + m.hblkhd) / 1024.0;
}

void bench_memory(std::vector<figure>& out, const identities& id, bool quick) {
  int n = quick ? 200 : 1000;
  progress("memory per idle connection");
  auto l = make_socket(passive{.local_host = "127.0.0.1"});
  auto s = server_ctx(id.ec, tls_version::tls1_3);
  // The clients live in a child process, so only the server's memory is counted here.
  int ready[2];
  if (::pipe(ready) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  std::cout.flush();
  pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    int status = 0;
    try {
      auto c = client_ctx(id.ec, tls_version::tls1_3);
      std::vector<ssl_stream> held;
      // All connected first, then all handshaken: the server makes every stream before it
      // handshakes any, to measure both stages.
      for (int i = 0; i < n; ++i)
        held.push_back(make_ssl_client_stream(
            make_socket(active{.remote_host = "127.0.0.1", .remote_port = l.local_port()}), c));
      for (auto& h : held) h.do_handshake();
      char b = 1;
      (void)!::write(ready[1], &b, 1);
      char wait;
      (void)!::read(ready[1], &wait, 1);  // blocks until the parent closes its end
      pause();
    } catch (...) {
      status = 1;
    }
    ::_exit(status);
  }
  ::close(ready[1]);
  std::vector<ssl_stream> conns;
  conns.reserve(static_cast<std::size_t>(n));
  // The first connection is a warm-up, so one-time allocations do not count. The baseline is
  // taken before the others are accepted: an accepted socket's own state is part of what a
  // connection costs.
  conns.push_back(make_ssl_server_stream(l.accept_connection(), s));
  conns.back().do_handshake();
  double before = heap_kib();
  for (int i = 1; i < n; ++i) conns.push_back(make_ssl_server_stream(l.accept_connection(), s));
  double made = heap_kib();
  for (int i = 1; i < n; ++i) conns[static_cast<std::size_t>(i)].do_handshake();
  double after = heap_kib();
  ::kill(child, SIGKILL);
  int st;
  ::waitpid(child, &st, 0);
  ::close(ready[0]);
  out.push_back({"memory", "server heap per idle TLS 1.3 connection", "KiB",
                 static_cast<double>(after - before) / (n - 1),
                 std::to_string(n) + " connections; kernel socket buffers not counted"});
  out.push_back({"memory", "  of which before the handshake (OpenSSL's SSL_new and ours)", "KiB",
                 static_cast<double>(made - before) / (n - 1), ""});
}

std::size_t resident_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      std::size_t kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

/// `sslstream listen --keep-open --echo` as its own process (this same binary), holding `n`
/// idle TLS connections made by this process: its resident memory before and after.
void bench_keep_open(std::vector<figure>& out, bool quick) {
  int n = quick ? 500 : 10000;
  progress("listen --keep-open with " + std::to_string(n) + " idle connections");
  if (auto limit = raise_descriptor_limit(); limit < static_cast<std::size_t>(n) + 64)
    throw std::runtime_error("bench: the descriptor limit (" + std::to_string(limit) +
                             ") is too low for " + std::to_string(n) + " connections");
  char dir[] = "/tmp/sslstream-bench-XXXXXX";
  if (!::mkdtemp(dir)) throw std::system_error(errno, std::generic_category(), "mkdtemp");
  std::string port_file = std::string(dir) + "/port";
  pid_t server = ::fork();
  if (server == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execl("/proc/self/exe", "sslstream", "listen", "--keep-open", "--echo", "--host", "127.0.0.1",
            "--port-file", port_file.c_str(), "-q", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  struct reaper {
    pid_t pid;
    std::string dir;
    ~reaper() {
      ::kill(pid, SIGKILL);
      int st;
      ::waitpid(pid, &st, 0);
      std::filesystem::remove_all(dir);
    }
  } reap{server, dir};
  std::uint16_t port = 0;
  for (int i = 0; i < 300 && !port; ++i) {  // up to 30 s for it to start
    std::ifstream in(port_file);
    if (!(in >> port)) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!port) throw std::runtime_error("bench: listen did not start");
  ssl_options o;
  o.verify = verify_mode::none;  // measuring memory, not trust
  auto ctx = make_ssl_client_context(o);
  auto connect_one = [&] {
    auto s = make_ssl_client_stream(
        make_socket(active{.remote_host = "127.0.0.1", .remote_port = port}), ctx);
    s.set_timeout(std::chrono::seconds(60));
    s << 'x' << std::flush;  // one echo: the server has finished the handshake and waits
    char c;
    s >> c;
    return s;
  };
  { auto warm = connect_one(); }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // lets it settle after warm-up
  auto before = resident_kib(server);
  std::vector<ssl_stream> held;
  held.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) held.push_back(connect_one());
  auto after = resident_kib(server);
  out.push_back(
      {"memory",
       "listen --keep-open --echo, resident with " + std::to_string(n) + " idle TLS connections",
       "MiB", static_cast<double>(after) / 1024,
       std::to_string(before / 1024) + " MiB before them"});
  out.push_back({"memory", "listen --keep-open --echo, resident per idle TLS connection", "KiB",
                 static_cast<double>(after - before) / n, ""});
}

std::string fmt(double v) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(v >= 100 ? 0 : v >= 10 ? 1 : 2) << v;
  return s.str();
}

int run(const bench_flags& f) {
  phase at = phase::setup;
  return guarded("bench", at, nullptr, [&] {
    identities id;
    std::vector<figure> figs;
    auto want = [&](const char* g) { return f.only.empty() || f.only == g; };
    if (want("bulk")) bench_bulk(figs, id, f.quick);
    if (want("handshakes")) bench_handshakes(figs, id, f.quick);
    if (want("latency")) bench_latency(figs, id, f.quick);
    if (want("memory")) {
      bench_memory(figs, id, f.quick);
      bench_keep_open(figs, f.quick);
    }
    if (::isatty(2)) std::cerr << "\r\033[K";
    if (f.json) {
      std::cout << "{\"mode\": \"" << (f.quick ? "quick" : "full") << "\", \"figures\": [\n";
      for (std::size_t i = 0; i < figs.size(); ++i)
        std::cout << "  {\"group\": \"" << figs[i].group << "\", \"name\": \"" << figs[i].name
                  << "\", \"unit\": \"" << figs[i].unit << "\", \"value\": " << figs[i].value
                  << ", \"note\": \"" << figs[i].note << "\"}" << (i + 1 < figs.size() ? "," : "")
                  << '\n';
      std::cout << "]}\n";
    } else {
      std::cout << std::left << std::setw(12) << "group" << std::setw(66) << "measure" << std::right
                << std::setw(12) << "value"
                << "  unit\n";
      for (const auto& x : figs)
        std::cout << std::left << std::setw(12) << x.group << std::setw(66) << x.name << std::right
                  << std::setw(12) << fmt(x.value) << "  " << x.unit
                  << (x.note.empty() ? "" : "  (" + x.note + ")") << '\n';
    }
    return ok;
  });
}

}  // namespace

void add_bench(CLI::App& app, command& chosen) {
  auto f = std::make_shared<bench_flags>();
  auto* sub = app.add_subcommand(
      "bench", "measure throughput, handshakes, round trips and memory per connection on loopback");
  sub->add_flag("--quick", f->quick, "small counts: a smoke run of a few seconds");
  sub->add_flag("--json", f->json, "print the figures as JSON");
  sub->add_option("--only", f->only, "one group: bulk, handshakes, latency or memory")
      ->check(CLI::IsMember({"bulk", "handshakes", "latency", "memory"}));
  sub->callback([f, &chosen] { chosen = {[f] { return run(*f); }}; });
}

}  // namespace cli
