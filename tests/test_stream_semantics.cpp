// The SSL stream as a std::iostream: words and numbers, getline, binary data of every byte
// value, large transfers in both directions at once, random write sizes and flush points,
// half close, STARTTLS, and the same operations on plain socket streams.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <csignal>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "data.hpp"
#include "loopback.hpp"

using namespace sslstream;
using namespace testing_support;

namespace {

tls_pair connected_pair() {
  auto p = make_tls_pair(tls_server_options(), client_options());
  auto r = handshake_both(p.server, p.client);
  if (r.server || r.client) throw std::runtime_error("handshake failed");
  return p;
}

}  // namespace

TEST(StreamSemantics, HandshakeIsDeferredToFirstIo) {
  auto [s, c] = socket_pair();
  auto server = make_ssl_server_stream(std::move(s), tls_server_options());
  auto client = make_ssl_client_stream(std::move(c), client_options());
  std::ostringstream before;
  before << client;
  EXPECT_NE(before.str().find("handshake pending"), std::string::npos);
  auto reader = std::async(std::launch::async, [&] {
    std::string a, b;
    server >> a >> b;  // the handshake happens inside this read, as in the tutorial
    return a + " " + b;
  });
  client << "secret message " << std::flush;  // and inside this flush on the client
  EXPECT_EQ(reader.get(), "secret message");
}

TEST(StreamSemantics, WordsNumbersAndLines) {
  auto p = connected_pair();
  p.client << "word " << 42 << ' ' << -7 << ' ' << 3.25 << ' ' << 1234567890123LL << "\n"
           << "a whole line\n"
           << "last line without newline" << std::flush;
  p.client.shutdown(direction::output);
  std::string w;
  int i, j;
  double d;
  long long ll;
  p.server >> w >> i >> j >> d >> ll;
  EXPECT_EQ(w, "word");
  EXPECT_EQ(i, 42);
  EXPECT_EQ(j, -7);
  EXPECT_EQ(d, 3.25);
  EXPECT_EQ(ll, 1234567890123LL);
  std::string line;
  std::getline(p.server, line);  // rest of the first line
  EXPECT_EQ(line, "");
  std::getline(p.server, line);
  EXPECT_EQ(line, "a whole line");
  std::getline(p.server, line);
  EXPECT_EQ(line, "last line without newline");
  EXPECT_TRUE(p.server.eof());
  EXPECT_FALSE(std::getline(p.server, line));
}

TEST(StreamSemantics, EveryByteValueBothWays) {
  auto p = connected_pair();
  std::string all;
  for (int rep = 0; rep < 3; ++rep)
    for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  p.client.write(all.data(), static_cast<std::streamsize>(all.size()));
  p.client.flush();
  std::string got(all.size(), '\0');
  p.server.read(got.data(), static_cast<std::streamsize>(got.size()));
  EXPECT_EQ(got, all);
  p.server.write_all(std::as_bytes(std::span(all)));
  EXPECT_EQ(read_exactly(p.client, all.size()), all);
}

TEST(StreamSemantics, BinaryApiAndOperatorsInterleave) {
  auto p = connected_pair();
  p.client << "header ";
  std::string body = random_bytes(100000, 1);
  p.client.write_all(std::as_bytes(std::span(body)));  // flushes "header " first, in order
  p.client << " trailer " << std::flush;
  std::string h;
  p.server >> h;
  EXPECT_EQ(h, "header");
  EXPECT_EQ(p.server.get(), ' ');
  EXPECT_EQ(read_exactly(p.server, body.size()), body);  // buffered bytes come first
  std::string t;
  p.server >> t;
  EXPECT_EQ(t, "trailer");
}

TEST(StreamSemantics, HundredMiBEachDirectionAtOnce) {
  auto p = connected_pair();
  // A stall fails the test with the stream's timeout error instead of hanging it.
  p.client.set_timeout(60s);
  p.server.set_timeout(60s);
  constexpr std::size_t total = 100u << 20;
  // How many bytes the stream accepted in a good state: an iostream that failed silently
  // (failbit or badbit set, nothing thrown) stops the count short of `total`.
  auto pump = [](ssl_stream& out, unsigned seed) {
    std::string chunk = random_bytes(1 << 20, seed);
    std::size_t sent = 0;
    while (sent < total) {
      if (!out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()))) return sent;
      sent += chunk.size();
      chunk[0] = static_cast<char>(chunk[0] + 1);  // each MiB differs
    }
    return out.flush() ? sent : std::size_t{0};
  };
  auto drain = [](ssl_stream& in, unsigned seed) {
    std::string chunk = random_bytes(1 << 20, seed);
    EVP_MD_CTX* expect = EVP_MD_CTX_new();
    EVP_MD_CTX* got = EVP_MD_CTX_new();
    EVP_DigestInit(expect, EVP_sha256());
    EVP_DigestInit(got, EVP_sha256());
    for (std::size_t i = 0; i < total; i += chunk.size()) {
      EVP_DigestUpdate(expect, chunk.data(), chunk.size());
      chunk[0] = static_cast<char>(chunk[0] + 1);
    }
    std::vector<char> buf(1 << 16);
    std::size_t n = 0;
    while (n < total) {
      auto k = in.read_some(std::as_writable_bytes(std::span(buf)));
      if (k == 0) break;
      EVP_DigestUpdate(got, buf.data(), k);
      n += k;
    }
    unsigned char a[32], b[32];
    EVP_DigestFinal(expect, a, nullptr);
    EVP_DigestFinal(got, b, nullptr);
    EVP_MD_CTX_free(expect);
    EVP_MD_CTX_free(got);
    return n == total && std::memcmp(a, b, 32) == 0;
  };
  auto c2s_write = std::async(std::launch::async, pump, std::ref(p.client), 11u);
  auto s2c_write = std::async(std::launch::async, pump, std::ref(p.server), 22u);
  auto c2s_read = std::async(std::launch::async, drain, std::ref(p.server), 11u);
  EXPECT_TRUE(drain(p.client, 22u));
  EXPECT_TRUE(c2s_read.get());
  EXPECT_EQ(c2s_write.get(), total);
  EXPECT_EQ(s2c_write.get(), total);
}

TEST(StreamSemantics, RandomWriteSizesAndFlushPoints) {
  auto p = connected_pair();
  std::string data = random_bytes(3 << 20, 7);
  auto writer = std::async(std::launch::async, [&] {
    std::mt19937 rng(99);
    std::size_t pos = 0;
    while (pos < data.size()) {
      std::size_t n = std::min<std::size_t>(data.size() - pos, rng() % 40000 + 1);
      switch (rng() % 4) {
        case 0: p.client.write(data.data() + pos, static_cast<std::streamsize>(n)); break;
        case 1: p.client.write_all(std::as_bytes(std::span(data.data() + pos, n))); break;
        case 2:
          for (std::size_t i = 0; i < std::min<std::size_t>(n, 300); ++i)
            p.client.put(data[pos + i]);
          n = std::min<std::size_t>(n, 300);
          break;
        default: p.client << std::string_view(data.data() + pos, n); break;
      }
      pos += n;
      if (rng() % 3 == 0) p.client.flush();
    }
    p.client.close();
  });
  std::mt19937 rng(5);
  std::string got;
  std::vector<char> buf(70000);
  for (;;) {
    std::size_t want = rng() % buf.size() + 1;
    std::size_t k;
    if (rng() % 2) {
      p.server.read(buf.data(), static_cast<std::streamsize>(want));
      k = static_cast<std::size_t>(p.server.gcount());
    } else {
      k = p.server.read_some(std::as_writable_bytes(std::span(buf.data(), want)));
    }
    got.append(buf.data(), k);
    if (k == 0 || p.server.eof()) break;
  }
  writer.get();
  EXPECT_EQ(got.size(), data.size());
  EXPECT_EQ(sha256(got), sha256(data));
}

TEST(StreamSemantics, TlsHalfClose) {
  auto p = connected_pair();
  p.client << "request" << std::flush;
  p.client.shutdown(direction::output);  // close_notify; the client may still read
  std::string all((std::istreambuf_iterator<char>(p.server)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "request");
  p.server << "response after the client's close_notify" << std::flush;
  p.server.close();
  std::string reply;
  std::getline(p.client, reply);
  EXPECT_EQ(reply, "response after the client's close_notify");
  p.client.clear();
  EXPECT_THROW(p.client << "x" << std::flush, std::logic_error);
}

TEST(StreamSemantics, CloseFlushesAndSendsCloseNotify) {
  auto p = connected_pair();
  p.client << "unflushed";
  p.client.close();
  EXPECT_FALSE(p.client.is_open());
  std::string all((std::istreambuf_iterator<char>(p.server)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "unflushed");  // and EOF was clean (no exception)
  p.client.close();             // idempotent
}

TEST(StreamSemantics, DestructorSendsCloseNotifyWithoutBlocking) {
  auto p = connected_pair();
  {
    auto gone = std::move(p.client);
    gone << "from the destructor";
  }
  std::string all((std::istreambuf_iterator<char>(p.server)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "from the destructor");
}

TEST(StreamSemantics, AStreamAbandonedAfterAnErrorDoesNotEndCleanly) {
  // A reader that gives up (here: its timeout) and lets the stream go must not tell the peer
  // that everything was said: the destructor sends no close_notify, so the peer sees a
  // truncation, not a clean end of short data. (Found by the fault-injection sweep.)
  auto p = connected_pair();
  {
    auto gone = std::move(p.server);
    gone.set_timeout(50ms);
    std::byte b[1];
    EXPECT_THROW(gone.read_some(b), socket_error);  // the client sends nothing
  }
  std::byte b[1];
  auto e = expect_throw<tls_error>([&] { p.client.read_some(b); });
  EXPECT_EQ(e.code(), make_error_code(errc::truncated)) << e.what();
}

TEST(StreamSemantics, AReadRetriedAfterATimeoutStillEndsCleanly) {
  auto p = connected_pair();
  p.server.set_timeout(50ms);
  std::byte b[1];
  EXPECT_THROW(p.server.read_some(b), socket_error);
  p.client << "x" << std::flush;
  p.server.set_timeout(10s);
  EXPECT_EQ(p.server.read_some(b), 1u);  // the stream is healthy again
  { auto gone = std::move(p.server); }
  EXPECT_EQ(p.client.read_some(b), 0u);  // close_notify: a clean end
}

TEST(StreamSemantics, InputPendingSeesBytesBufferedAboveTheSocket) {
  // What an event loop asks before it waits on the descriptor: bytes OpenSSL already holds
  // (the rest of a record, records read ahead) never make the socket readable again.
  auto p = connected_pair();
  p.client << "x" << std::flush;
  std::byte one[1];
  ASSERT_EQ(p.server.read_some(one), 1u);  // the handshake is done and the reads are empty
  EXPECT_FALSE(p.server.input_pending());
  p.client << std::string(100, 'a') << std::flush << std::string(100, 'b') << std::flush;
  std::byte ten[10];
  ASSERT_EQ(p.server.read_some(ten), 10u);
  EXPECT_TRUE(p.server.input_pending());
  std::size_t got = 10;
  while (got < 200) {
    std::byte b[50];
    got += p.server.read_some(b);
  }
  EXPECT_EQ(got, 200u);
  EXPECT_FALSE(p.server.input_pending());
  // Bytes the iostream side has buffered count too.
  p.client << "word rest" << std::flush;
  std::string w;
  p.server >> w;
  EXPECT_TRUE(p.server.input_pending());
}

TEST(StreamSemantics, CloseBeforeAnyIoSendsNothing) {
  auto [s, c] = socket_pair();
  auto client = make_ssl_client_stream(std::move(c), client_options());
  client.close();  // no handshake just to close
  std::byte b[1];
  EXPECT_EQ(s.read_some(b), 0u);  // the server sees a plain EOF, no ClientHello
}

TEST(StreamSemantics, StartTlsKeepsBytesAlreadyBuffered) {
  auto [s, c] = socket_pair();
  auto client_side = std::async(std::launch::async, [c = std::move(c)]() mutable {
    std::string line;
    std::getline(c, line);
    c << "STARTTLS\r\n" << std::flush;
    // Start TLS at once, without waiting for the server's go-ahead: the ClientHello may arrive
    // in the same read as the command above.
    auto tls = make_ssl_client_stream(std::move(c), client_options());
    tls << "inside tls" << std::endl;
    std::string reply;
    std::getline(tls, reply);
    return line + "|" + reply;
  });
  s << "220 ready\r\n" << std::flush;
  std::string cmd;
  std::getline(s, cmd);
  EXPECT_EQ(cmd, "STARTTLS\r");
  auto tls = make_ssl_server_stream(std::move(s), tls_server_options());
  std::string line;
  std::getline(tls, line);
  EXPECT_EQ(line, "inside tls");
  tls << "ok" << std::endl;
  EXPECT_EQ(client_side.get(), "220 ready\r|ok");
}

TEST(StreamSemantics, MovedStreamKeepsWorking) {
  auto p = connected_pair();
  ssl_stream moved(std::move(p.client));
  moved << "hello " << std::flush;
  std::string w;
  p.server >> w;
  EXPECT_EQ(w, "hello");
  EXPECT_FALSE(p.client.is_open());
  EXPECT_THROW(p.client.do_handshake(), std::logic_error);
}

TEST(StreamSemantics, PlainSocketStreamLargeTransfer) {
  auto [s, c] = socket_pair();
  std::string data = random_bytes(20 << 20, 3);
  auto w = std::async(std::launch::async, [&] {
    c.write_all(std::as_bytes(std::span(data)));
    c.close();
  });
  std::string got((std::istreambuf_iterator<char>(s)), std::istreambuf_iterator<char>());
  w.get();
  EXPECT_EQ(sha256(got), sha256(data));
}

TEST(StreamSemantics, NoSigpipeWhenThePeerIsGone) {
  // The library must not raise SIGPIPE (it sends with MSG_NOSIGNAL) and must not change the
  // process's signal handling: with the default action, a SIGPIPE would kill this test.
  auto previous = std::signal(SIGPIPE, SIG_DFL);
  {
    auto p = connected_pair();
    p.server.close();
    std::string chunk(1 << 16, 'x');
    EXPECT_THROW(
        {
          for (int i = 0; i < 1000; ++i) p.client.write_all(std::as_bytes(std::span(chunk)));
        },
        sslstream::error);
  }
  {
    auto [s, c] = socket_pair();
    s.close();
    std::string chunk(1 << 16, 'y');
    EXPECT_THROW(
        {
          for (int i = 0; i < 1000; ++i) c.write_all(std::as_bytes(std::span(chunk)));
        },
        socket_error);
  }
  std::signal(SIGPIPE, previous);
}
