// Fault injection: our client and our server talk through a proxy that splits, delays, cuts,
// resets or flips bits, at every byte offset of a recorded handshake and the first records.
// Every outcome is success with exactly the bytes sent (splits, delays, harmless flips) or a
// classified sslstream error with a message — never another exception, a crash, a wait past the
// stream timeout, or bytes delivered that were not sent.
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <set>

#include "data.hpp"
#include "fault_proxy.hpp"
#include "loopback.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;

namespace {

/// What one side of a conversation saw.
struct side {
  std::string received;
  std::exception_ptr error;
  std::string identifier;  ///< of the sslstream::error, or "" when it succeeded
};

std::string describe(const std::exception_ptr& e) {
  if (!e) return "no error";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

template <class F>
side run_side(F body) {
  side r;
  try {
    body(r.received);
  } catch (const sslstream::error& e) {
    r.error = std::current_exception();
    r.identifier = e.identifier();
  } catch (...) {
    r.error = std::current_exception();
    r.identifier = "UNEXPECTED";
  }
  return r;
}

struct conversation {
  side server, client;
  std::size_t relayed[2];
};

// The first records after the handshake: small, so that sweeping every offset stays quick.
const std::string request = random_bytes(200, 1), reply = random_bytes(300, 2);

/// The client sends `request`, the server answers with `reply`, both close; through a proxy
/// applying `f`. Fresh client context each time, so every run is a full handshake.
conversation converse(const ssl_context& server_ctx, fault f, tls_version max,
                      std::chrono::milliseconds timeout = 5s) {
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  conversation c{};
  {
    fault_proxy proxy(listener.local_port(), f);
    auto server = std::async(std::launch::async, [&] {
      return run_side([&](std::string& got) {
        auto s = make_ssl_server_stream(accept_within(listener, "the fault proxy"), server_ctx);
        s.set_timeout(timeout);
        got = read_exactly(s, request.size());
        if (got.size() < request.size()) return;
        s.write_all(std::as_bytes(std::span(reply)));
        s.close();
      });
    });
    c.client = run_side([&](std::string& got) {
      auto o = client_options();
      o.max_version = max;
      auto s = make_ssl_client_stream(
          make_socket(active{.remote_host = "127.0.0.1", .remote_port = proxy.port()}),
          make_ssl_client_context(o));
      s.set_timeout(timeout);
      s.write_all(std::as_bytes(std::span(request)));
      got = read_exactly(s, reply.size());
      s.close();
    });
    // A client that failed before connecting leaves the server waiting in accept: wake it.
    if (server.wait_for(0s) != std::future_status::ready && c.client.error)
      (void)make_socket(active{.remote_host = "127.0.0.1", .remote_port = listener.local_port()});
    c.server = server.get();
    c.relayed[0] = proxy.relayed(flow::client_to_server);
    c.relayed[1] = proxy.relayed(flow::server_to_client);
  }
  return c;
}

/// Never bytes that were not sent, never an exception outside sslstream's classes, and a
/// message that says something.
void expect_sound(const conversation& c, const std::string& where,
                  const std::set<std::string>& allowed) {
  // Success means every byte: a stream that ended cleanly but short would be silent loss.
  if (!c.server.error) {
    EXPECT_EQ(c.server.received, request) << where << ": server";
  }
  if (!c.client.error) {
    EXPECT_EQ(c.client.received, reply) << where << ": client";
  }
  EXPECT_EQ(request.compare(0, c.server.received.size(), c.server.received), 0)
      << where << ": the server received bytes the client did not send";
  EXPECT_EQ(reply.compare(0, c.client.received.size(), c.client.received), 0)
      << where << ": the client received bytes the server did not send";
  for (auto* s : {&c.server, &c.client}) {
    if (s->error) {
      EXPECT_TRUE(allowed.count(s->identifier))
          << where << ": " << s->identifier << ": " << describe(s->error);
      EXPECT_GT(describe(s->error).size(), 20u) << where << ": " << describe(s->error);
    }
  }
}

void expect_success(const conversation& c, const std::string& where) {
  EXPECT_FALSE(c.server.error) << where << ": server: " << describe(c.server.error);
  EXPECT_FALSE(c.client.error) << where << ": client: " << describe(c.client.error);
  EXPECT_EQ(c.server.received, request) << where;
  EXPECT_EQ(c.client.received, reply) << where;
}

struct sweep_stats {
  std::map<std::string, int> outcomes;
  void add(const conversation& c) {
    outcomes["server " + (c.server.identifier.empty() ? "ok" : c.server.identifier)]++;
    outcomes["client " + (c.client.identifier.empty() ? "ok" : c.client.identifier)]++;
  }
  std::string str() const {
    std::string s;
    for (auto& [k, v] : outcomes) s += "  " + k + ": " + std::to_string(v) + "\n";
    return s;
  }
};

class Faults : public ::testing::TestWithParam<tls_version> {
 protected:
  ssl_context server_ctx = make_ssl_server_context(tls_server_options("ec"));
  std::string name() const { return GetParam() == tls_version::tls1_3 ? "TLS 1.3" : "TLS 1.2"; }
  /// The bytes each direction carries in an undamaged conversation.
  std::pair<std::size_t, std::size_t> recorded() {
    auto c = converse(server_ctx, {}, GetParam());
    expect_success(c, "recording");
    return {c.relayed[0], c.relayed[1]};
  }
  /// Runs `kind` at every offset of both directions; returns the outcomes seen.
  sweep_stats sweep(fault::kind kind, const std::set<std::string>& allowed,
                    std::chrono::milliseconds timeout = 5s) {
    auto [up, down] = recorded();
    sweep_stats stats;
    for (auto dir : {flow::client_to_server, flow::server_to_client}) {
      auto total = dir == flow::client_to_server ? up : down;
      for (std::size_t off = 0; off < total; ++off) {
        auto c = converse(server_ctx, {kind, dir, off}, GetParam(), timeout);
        auto where = name() +
                     (dir == flow::client_to_server ? " client->server" : " server->client") +
                     " offset " + std::to_string(off);
        expect_sound(c, where, allowed);
        stats.add(c);
        if (HasFailure()) return stats;
      }
    }
    return stats;
  }
};

}  // namespace

TEST_P(Faults, OneBytePiecesStillWork) {
  expect_success(converse(server_ctx, {fault::split}, GetParam()), name() + " split");
}

TEST_P(Faults, DelaysStillWork) {
  expect_success(converse(server_ctx, {fault::delay, flow::client_to_server, 0, 2ms}, GetParam()),
                 name() + " delay");
}

TEST_P(Faults, CutAtEveryOffset) {
  // The stream ends early: a truncation or a failed handshake, or the kernel's word for a
  // connection gone (a write after the peer closed).
  auto stats =
      sweep(fault::cut, {"truncated", "handshake-failed", "connection-reset", "broken-pipe"});
  std::cout << name() << " cuts:\n" << stats.str();
}

TEST_P(Faults, ResetAtEveryOffset) {
  // A reset is seen as one where it is read; a side that had already seen its peer's end sees
  // a truncation instead.
  auto stats =
      sweep(fault::reset, {"connection-reset", "broken-pipe", "truncated", "handshake-failed"});
  std::cout << name() << " resets:\n" << stats.str();
}

TEST_P(Faults, BitFlipAtEveryOffset) {
  // A flipped bit breaks a MAC, a signature, a transcript or a record header; one in a length
  // field leaves a side waiting for bytes that never come, until its timeout (1 s here). A
  // flip in a field the protocol ignores may succeed, and then with every byte exact.
  auto stats = sweep(fault::flip,
                     {"handshake-failed", "protocol-error", "verify-failed", "truncated", "timeout",
                      "connection-reset", "broken-pipe"},
                     1s);
  std::cout << name() << " flips:\n" << stats.str();
}

INSTANTIATE_TEST_SUITE_P(Versions, Faults,
                         ::testing::Values(tls_version::tls1_3, tls_version::tls1_2));
