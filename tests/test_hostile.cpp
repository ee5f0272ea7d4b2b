// The hostile-peer kit: a man in the middle at the record level (support/record_relay.hpp)
// lets an honest TLS peer talk to the stream under test, then at every record boundary of the
// conversation — before, inside and after each flight, TLS 1.3 and 1.2, both roles — does one
// hostile thing instead: a plaintext alert (close_notify and every fatal one), an unexpected
// handshake message, a ChangeCipherSpec, garbage, a cut record, FIN, RST or silence.
//
// For every cell: a handshake that completes has the peer's verified certificate; nothing
// takes longer than its limit plus the slack; no busy loop (the victim's CPU time is bounded
// well below the wall time of a timed-out wait); the error is an sslstream::error of the
// kind the action calls for, and an error is never an end of stream.
#include <gtest/gtest.h>
#include <time.h>

#include <array>
#include <future>
#include <sslstream/sslstream.hpp>
#include <thread>

#include "loopback.hpp"
#include "record_relay.hpp"
#include "timing.hpp"

using namespace std::chrono_literals;
using namespace testing_support;
using sslstream::tls_version;

namespace {

constexpr auto limit = 400ms;       // the victim's handshake_timeout and read timeout
constexpr auto slack = 1500ms;      // scheduling on a loaded 2-core machine, sanitizers
constexpr auto cpu_budget = 150ms;  // a spinning wait of `limit` would burn all of it
constexpr auto relay_limit = 8s;    // the relay and the honest peer end by then regardless
constexpr int parallel_cells = 8;

constexpr double ms(std::chrono::milliseconds d) { return static_cast<double>(d.count()); }

struct cell_result {
  bool handshake_ok = false;
  bool verified = false;   // the peer's certificate is there and verified
  bool clean_eof = false;  // reads ended with a clean end of stream
  std::string error;       // sslstream::error::identifier() of the failure, if any
  std::string message;
  std::string foreign;  // an exception that is not an sslstream::error
  double wall_ms = 0, cpu_ms = 0;
  int forwarded = 0;
  bool acted = false;
};

/// The stream under test: handshake, then read to the end. Everything it saw, and its cost.
void run_victim(sslstream::ssl_stream& s, cell_result& r) {
  auto t0 = std::chrono::steady_clock::now();
  double c0 = thread_cpu_ms();
  try {
    s.set_timeout(limit);
    s.do_handshake();
    r.handshake_ok = true;
    auto cert = s.peer_certificate();
    r.verified = cert.has_value() && s.verify_result().code == 0 && s.cipher() != "(NONE)";
    std::array<std::byte, 4096> b{};
    while (s.read_some(b) > 0) {
    }
    r.clean_eof = true;
  } catch (const sslstream::error& e) {
    r.error = e.identifier();
    r.message = e.what();
  } catch (const std::exception& e) {
    r.foreign = e.what();
  }
  r.cpu_ms = thread_cpu_ms() - c0;
  r.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// The honest side: handshake, one line, close_notify. Failures are expected (it is cut off).
void run_honest(sslstream::ssl_stream s) {
  try {
    s.set_timeout(2s);
    s << "hello from the honest peer\n" << std::flush;
    s.close();
  } catch (...) {
  }
}

struct setup {
  bool victim_is_server;
  tls_version version;

  sslstream::ssl_options victim_options() const {
    auto o = victim_is_server ? tls_server_options("ec") : client_options();
    if (victim_is_server) {  // the strictest server: a verified client certificate required
      o.verify = sslstream::verify_mode::required;
      o.ca_file = cert("ca.pem");
    }
    o.min_version = o.max_version = version;
    o.handshake_timeout = limit;
    return o;
  }
  sslstream::ssl_options honest_options() const {
    auto o = victim_is_server ? client_options() : tls_server_options("ec");
    if (victim_is_server) {
      o.certificate = cert("client-ec.pem");
      o.key = cert("client-ec.key");
    }
    o.min_version = o.max_version = version;
    o.handshake_timeout = 3s;
    return o;
  }
};

/// One conversation through the relay, acting after `k` honest records (k < 0: never).
cell_result run_cell(const setup& su, int k, const hostile_action& action) {
  cell_result r;
  // Fresh contexts: no session resumption, so every cell meets the same full handshake.
  auto victim_ctx = su.victim_is_server ? sslstream::make_ssl_server_context(su.victim_options())
                                        : sslstream::make_ssl_client_context(su.victim_options());
  auto honest_ctx = su.victim_is_server ? sslstream::make_ssl_client_context(su.honest_options())
                                        : sslstream::make_ssl_server_context(su.honest_options());
  auto target = sslstream::make_socket(sslstream::passive{.local_host = "127.0.0.1"});
  record_relay relay(target.local_port(), su.victim_is_server, k < 0 ? 1 << 30 : k, action,
                     relay_limit);
  auto peer = std::async(std::launch::async, [&] {
    // The client side connects to the relay; the server side is accepted from it.
    if (su.victim_is_server) {
      auto sock = sslstream::make_socket(
          sslstream::active{.remote_host = "127.0.0.1", .remote_port = relay.port()});
      run_honest(sslstream::make_ssl_client_stream(std::move(sock), honest_ctx));
    } else {
      auto sock = target.accept_connection(relay_limit);
      if (sock) run_honest(sslstream::make_ssl_server_stream(std::move(*sock), honest_ctx));
    }
  });
  if (su.victim_is_server) {
    auto sock = target.accept_connection(relay_limit);
    if (!sock) {
      r.foreign = "the relay never connected to the server under test";
    } else {
      auto s = sslstream::make_ssl_server_stream(std::move(*sock), victim_ctx);
      run_victim(s, r);
    }
  } else {
    try {  // an RST at once may already end the connect
      auto sock = sslstream::make_socket(sslstream::active{
          .remote_host = "127.0.0.1", .remote_port = relay.port(), .connect_timeout = 5s});
      auto s = sslstream::make_ssl_client_stream(std::move(sock), victim_ctx);
      run_victim(s, r);
    } catch (const sslstream::error& e) {
      r.error = e.identifier();
      r.message = e.what();
    }
  }
  peer.get();
  r.forwarded = relay.forwarded();
  r.acted = relay.acted();
  return r;
}

/// What error each action may cause. Waiting actions may also end in the stream's timeout.
bool allowed(const hostile_action& a, const cell_result& r) {
  const std::string& e = r.error;
  switch (a.what) {
    case hostile_action::silence: return e == "timeout";
    case hostile_action::rst: return e == "connection-reset" || e == "broken-pipe";
    case hostile_action::fin: return r.handshake_ok ? e == "truncated" : e == "handshake-failed";
    case hostile_action::bytes: break;
  }
  // These may wait for more: a CCS is allowed in TLS 1.3's compatibility mode, a cut record
  // waits for its end, and user_canceled (90) is not fatal in TLS 1.3 (RFC 8446 §6.1).
  if (a.name == "ChangeCipherSpec" || a.name == "cut record" || a.name == "fatal alert 90")
    if (e == "timeout") return true;
  return r.handshake_ok ? e == "protocol-error" : e == "handshake-failed";
}

std::string describe(const setup& su, int k, const hostile_action& a, const cell_result& r) {
  return std::string(su.victim_is_server ? "server" : "client") + " under test, " +
         (su.version == tls_version::tls1_3 ? "TLS 1.3" : "TLS 1.2") + ", " + a.name + " after " +
         std::to_string(k) + " honest records: handshake " + (r.handshake_ok ? "done" : "failed") +
         ", error '" + r.error + "' (" + r.message + ")" +
         (r.foreign.empty() ? "" : ", foreign exception: " + r.foreign) +
         (r.clean_eof ? ", clean EOF" : "") + ", " + std::to_string(r.wall_ms) + " ms, CPU " +
         std::to_string(r.cpu_ms) + " ms";
}

void sweep(const setup& su) {
  // The honest conversation first, through the relay untouched: its length in records.
  auto honest = run_cell(su, -1, hostile_action::simple(hostile_action::silence, "none"));
  ASSERT_TRUE(honest.handshake_ok && honest.verified && honest.clean_eof)
      << "the honest conversation failed: " << honest.message << honest.foreign;
  const int records = honest.forwarded;
  ASSERT_GE(records, 3);

  struct cell {
    int k;
    hostile_action action;
    std::future<cell_result> result;
  };
  std::vector<cell> cells;
  for (const auto& a : all_hostile_actions(su.victim_is_server))
    for (int k = 0; k < records; ++k) cells.push_back({k, a, {}});
  std::size_t completed = 0, checked = 0;
  for (std::size_t first = 0; first < cells.size(); first += parallel_cells) {
    auto last = std::min(cells.size(), first + parallel_cells);
    for (auto i = first; i < last; ++i)
      cells[i].result = std::async(std::launch::async,
                                   [&su, &c = cells[i]] { return run_cell(su, c.k, c.action); });
    for (auto i = first; i < last; ++i) {
      auto& c = cells[i];
      cell_result r = c.result.get();
      ++checked;
      std::string what = describe(su, c.k, c.action, r);
      EXPECT_TRUE(r.foreign.empty()) << what;
      EXPECT_TRUE(r.acted) << what;
      if (r.handshake_ok) {
        ++completed;
        EXPECT_TRUE(r.verified) << "a handshake completed without a verified peer: " << what;
      }
      // The hostile side never forwards the honest close_notify, so no cell may end cleanly.
      EXPECT_FALSE(r.clean_eof) << "an attack passed for a clean end of stream: " << what;
      if (!r.clean_eof && r.foreign.empty()) {
        EXPECT_TRUE(allowed(c.action, r)) << "wrong error kind: " << what;
      }
      // Bounded: at most the handshake limit and one read limit, plus slack.
      EXPECT_LE(r.wall_ms, ms(2 * limit + slack)) << what;
      if (r.error == "timeout") {
        EXPECT_GE(r.wall_ms, ms(limit) - 1) << what;
      }
      EXPECT_LE(r.cpu_ms, ms(cpu_budget)) << "busy: " << what;
    }
  }
  std::printf("%s, %s: %zu cells over %d honest records, %zu with the handshake done first\n",
              su.victim_is_server ? "server" : "client",
              su.version == tls_version::tls1_3 ? "TLS 1.3" : "TLS 1.2", checked, records,
              completed);
}

}  // namespace

TEST(HostilePeer, AgainstOurClientTls13) { sweep({false, tls_version::tls1_3}); }
TEST(HostilePeer, AgainstOurClientTls12) { sweep({false, tls_version::tls1_2}); }
TEST(HostilePeer, AgainstOurServerTls13) { sweep({true, tls_version::tls1_3}); }
TEST(HostilePeer, AgainstOurServerTls12) { sweep({true, tls_version::tls1_2}); }
