// Data integrity, randomized: rounds of random sizes, random write sizes and flush points, both
// directions at once, against a random peer — ours, OpenSSL (s_client) or GnuTLS (gnutls-cli) —
// over TLS 1.3 or 1.2. Every byte is checked against the stream it was drawn from, and the
// SHA-256 of each direction is compared as well.
//
//   SSLSTREAM_INTEGRITY_ROUNDS=300 SSLSTREAM_INTEGRITY_SEED=7 build/.../test_integrity
// runs a longer one (the seed of a failing round is in its message).
#include <gtest/gtest.h>

#include <cstdlib>
#include <future>
#include <random>

#include "data.hpp"
#include "loopback.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;

namespace {

unsigned env_or(const char* name, unsigned fallback) {
  const char* v = std::getenv(name);
  return v ? static_cast<unsigned>(std::stoul(v)) : fallback;
}

std::string random_bytes(std::size_t n, std::mt19937_64& rng) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

/// A size between 1 and `max`, small ones as likely as large ones (log-uniform).
std::size_t some_size(std::mt19937_64& rng, std::size_t max) {
  std::uniform_real_distribution<double> d(0, std::log(static_cast<double>(max)));
  return std::max<std::size_t>(1, static_cast<std::size_t>(std::exp(d(rng))));
}

/// Writes `data` in random pieces through the binary API and the operators, flushing at random
/// points, then flushes. The reader thread uses only read_some, so the two never share iostream
/// state.
void write_randomly(ssl_stream& s, const std::string& data, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t pos = 0; pos < data.size();) {
    auto n = std::min(data.size() - pos, some_size(rng, 100000));
    switch (rng() % 3) {
      case 0: s.write_all(std::as_bytes(std::span(data.data() + pos, n))); break;
      case 1: s.write(data.data() + pos, static_cast<std::streamsize>(n)); break;
      default: s << std::string_view(data.data() + pos, n); break;
    }
    if (!s) throw std::runtime_error("the stream failed while writing");
    pos += n;
    if (rng() % 4 == 0) s.flush();
  }
  s.flush();
}

/// Reads to the peer's close_notify in random-sized reads; returns what arrived.
std::string read_randomly(ssl_stream& s, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string got;
  std::vector<std::byte> buf(100000);
  while (auto n = s.read_some(std::span(buf).first(some_size(rng, buf.size()))))
    got.append(reinterpret_cast<const char*>(buf.data()), n);
  return got;
}

/// Both directions of one stream at once: returns what it received.
std::string both_ways(ssl_stream& s, const std::string& out, std::uint64_t seed) {
  auto w = std::async(std::launch::async, [&] {
    write_randomly(s, out, seed);
    s.shutdown(direction::output);  // close_notify: the end of this direction
  });
  auto got = read_randomly(s, seed + 1);
  w.get();
  return got;
}

void expect_same(const std::string& got, const std::string& sent, const std::string& what) {
  ASSERT_EQ(got.size(), sent.size()) << what;
  auto first = std::mismatch(got.begin(), got.end(), sent.begin());
  ASSERT_TRUE(first.first == got.end())
      << what << ": first wrong byte at offset " << (first.first - got.begin());
  EXPECT_EQ(sha256(got), sha256(sent)) << what;
}

enum class peer { ours, openssl, gnutls };
const char* name(peer p) {
  return p == peer::ours ? "ours" : p == peer::openssl ? "openssl s_client" : "gnutls-cli";
}

/// One round with our client and our server.
void round_with_ours(const std::string& up, const std::string& down, tls_version v,
                     std::uint64_t seed, const std::string& what) {
  auto so = tls_server_options("ec"), co = client_options();
  so.max_version = co.max_version = v;
  auto p = make_tls_pair(so, co);
  auto server = std::async(std::launch::async, [&] { return both_ways(p.server, down, seed); });
  auto at_client = both_ways(p.client, up, seed + 2);
  auto at_server = server.get();
  expect_same(at_server, up, what + ", client to server");
  expect_same(at_client, down, what + ", server to client");
}

/// One round with an external client relaying its stdin and stdout: it sends `up` (its stdin)
/// and we send `down`, which it prints.
void round_with_tool(peer who, const std::string& up, const std::string& down, tls_version v,
                     std::uint64_t seed, const std::string& what) {
  auto so = tls_server_options("ec");
  so.max_version = v;
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  auto port = std::to_string(listener.local_port());
  std::string version = v == tls_version::tls1_3 ? "1.3" : "1.2";
  std::string cmd = who == peer::openssl
                        ? "exec openssl s_client -quiet -connect 127.0.0.1:" + port + " -CAfile " +
                              cert("ca.pem") + (v == tls_version::tls1_3 ? " -tls1_3" : " -tls1_2")
                        : "exec gnutls-cli --logfile=/dev/stderr --x509cafile " + cert("ca.pem") +
                              " -p " + port + " --priority=NORMAL:-VERS-ALL:+VERS-TLS" + version +
                              " localhost";
  process tool({"bash", "-c", cmd + " 2>/dev/null"});
  auto accepted = listener.accept_connection(30s);
  ASSERT_TRUE(accepted) << what << ": the client did not connect";
  auto s = make_ssl_server_stream(std::move(*accepted), so);
  s.set_timeout(60s);
  // Its stdin in random pieces on a thread of its own; left open until the end, since these
  // tools stop reading the network when their stdin ends.
  auto feeder = std::async(std::launch::async, [&] {
    std::mt19937_64 rng(seed + 3);
    for (std::size_t pos = 0; pos < up.size();) {
      auto n = std::min(up.size() - pos, some_size(rng, 100000));
      tool.write_stdin(std::string_view(up).substr(pos, n));
      pos += n;
    }
  });
  auto w = std::async(std::launch::async, [&] { write_randomly(s, down, seed); });
  // The tool sends no close_notify of its own while its stdin is open: read exactly `up`.
  std::string got;
  std::mt19937_64 rng(seed + 1);
  std::vector<std::byte> buf(100000);
  while (got.size() < up.size()) {
    auto want = std::min(up.size() - got.size(), some_size(rng, buf.size()));
    auto n = s.read_some(std::span(buf).first(want));
    if (n == 0) break;
    got.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  feeder.get();
  w.get();
  // Only now our close_notify, which ends the tool (it stops at once, read or not); what it
  // printed is what we sent.
  s.shutdown(direction::output);
  tool.drain(60s);
  tool.close_stdin();
  EXPECT_TRUE(tool.wait(30s)) << what << ": the tool did not exit";
  expect_same(got, up, what + ", client to server");
  expect_same(tool.output(), down, what + ", server to client");
}

}  // namespace

TEST(Integrity, RandomRoundsAgainstRandomPeers) {
  unsigned rounds = env_or("SSLSTREAM_INTEGRITY_ROUNDS", 30);
  std::uint64_t seed = env_or("SSLSTREAM_INTEGRITY_SEED", 20261128);
  std::mt19937_64 rng(seed);
  std::size_t total = 0;
  for (unsigned r = 0; r < rounds; ++r) {
    auto round_seed = rng();
    std::mt19937_64 data_rng(round_seed);
    // Every peer in every three rounds, in random order within them.
    std::array<peer, 3> order{peer::ours, peer::openssl, peer::gnutls};
    std::shuffle(order.begin(), order.end(), std::mt19937_64(seed + r / 3));
    peer who = order[r % 3];
    auto v = data_rng() % 2 ? tls_version::tls1_3 : tls_version::tls1_2;
    auto up = random_bytes(some_size(data_rng, 3 << 20), data_rng);
    auto down = random_bytes(some_size(data_rng, 3 << 20), data_rng);
    std::string what = "round " + std::to_string(r) + " (seed " + std::to_string(round_seed) +
                       ", " + name(who) + ", " +
                       (v == tls_version::tls1_3 ? "TLS 1.3" : "TLS 1.2") + ", " +
                       std::to_string(up.size()) + " up, " + std::to_string(down.size()) + " down)";
    if (who == peer::ours)
      round_with_ours(up, down, v, round_seed, what);
    else
      round_with_tool(who, up, down, v, round_seed, what);
    if (HasFailure()) return;
    total += up.size() + down.size();
  }
  std::cout << rounds << " rounds, " << total << " bytes checked\n";
}
