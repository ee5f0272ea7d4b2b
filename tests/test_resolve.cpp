// Connecting to a name with several addresses: each is tried in turn, a refused one and a
// silent one (its SYNs dropped) alike, within connect_timeout. The names come from
// tests/hosts.nss_wrapper through nss_wrapper, which this program preloads into itself, so the
// test does not depend on this machine's hosts file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include "loopback.hpp"
#include "silent_listener.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;

namespace {

// Before main: unless nss_wrapper is already set up, set it up and exec this program again, so
// the test runs the same by hand and under ctest. If the library is missing, the loader says so
// and the tests below fail, naming the package.
const bool nss_wrapper_set_up = [] {
  if (std::getenv("NSS_WRAPPER_HOSTS")) return true;
  ::setenv("NSS_WRAPPER_HOSTS", SSLSTREAM_TEST_HOSTS, 1);
  const char* preload = std::getenv("LD_PRELOAD");
  ::setenv("LD_PRELOAD",
           (std::string("libnss_wrapper.so") + (preload ? std::string(" ") + preload : "")).c_str(),
           1);
  // ASan insists on being first in the library list; being second here is intended.
  const char* asan = std::getenv("ASAN_OPTIONS");
  ::setenv("ASAN_OPTIONS", (std::string(asan ? asan : "") + ":verify_asan_link_order=0").c_str(),
           1);
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (std::size_t at = 0; at < all.size(); at = all.find('\0', at) + 1)
    args.emplace_back(all.c_str() + at);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv("/proc/self/exe", argv.data());
  return false;
}();

constexpr const char* dual = "dual.sslstream.test";  // ::1 first, then 127.0.0.1

class Resolve : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(nss_wrapper_set_up);
    ASSERT_EQ(lookup_hostname_all(dual), (std::vector<std::string>{"::1", "127.0.0.1"}))
        << "the names of tests/hosts.nss_wrapper need libnss_wrapper.so (Debian package "
           "libnss-wrapper)";
  }
};

}  // namespace

TEST_F(Resolve, ARefusedAddressIsFollowedByTheNext) {
  // Only 127.0.0.1 listens: ::1, tried first, refuses.
  auto four = make_socket(passive{.local_host = "127.0.0.1"});
  auto c = make_socket(active{.remote_host = dual, .remote_port = four.local_port()});
  EXPECT_EQ(c.remote_host(), "127.0.0.1");
  auto s = four.accept_connection(10s);
  ASSERT_TRUE(s.has_value());
  // Only ::1 listens: it answers first.
  auto six = make_socket(passive{.local_host = "::1"});
  auto c6 = make_socket(active{.remote_host = dual, .remote_port = six.local_port()});
  EXPECT_EQ(c6.remote_host(), "::1");
}

TEST_F(Resolve, EveryAddressRefusedNamesTheHostAndTheLastAddress) {
  auto spare = make_socket(passive{.local_host = "127.0.0.1"});
  auto port = spare.local_port();
  spare.close();
  try {
    make_socket(active{.remote_host = dual, .remote_port = port});
    FAIL() << "connected to a closed port";
  } catch (const socket_error& e) {
    EXPECT_EQ(e.identifier(), "connection-refused");
    std::string m = e.what();
    EXPECT_NE(m.find(dual), std::string::npos) << m;
    EXPECT_NE(m.find("127.0.0.1"), std::string::npos) << m;
  }
}

TEST_F(Resolve, ASilentAddressDoesNotSpendTheWholeConnectTimeout) {
  // ::1 drops our SYN; 127.0.0.1 on the same port accepts. The silent first address may take
  // only its share of connect_timeout, so the second is still tried in time.
  std::unique_ptr<silent_listener> silent;
  std::optional<passive_socket> four;
  for (int attempt = 0; attempt < 20 && !four; ++attempt) {
    silent = std::make_unique<silent_listener>("::1");
    try {
      four = make_socket(
          passive{.local_host = "127.0.0.1", .local_port = silent->listener.local_port()});
    } catch (const socket_error&) {
      // that port is taken on 127.0.0.1: choose another
    }
  }
  ASSERT_TRUE(four.has_value());
  auto c = make_socket(
      active{.remote_host = dual, .remote_port = four->local_port(), .connect_timeout = 4s});
  EXPECT_EQ(c.remote_host(), "127.0.0.1");
}

TEST_F(Resolve, ATimeoutSpentOnASilentAddressIsReportedAsATimeout) {
  silent_listener silent("::1");
  // ::1 is silent and 1 s is too short to share (an attempt gets at least 2 s or all that is
  // left): the connect ends as a timeout naming the host, not as a refusal from 127.0.0.1.
  try {
    make_socket(active{
        .remote_host = dual, .remote_port = silent.listener.local_port(), .connect_timeout = 1s});
    FAIL() << "connected to a silent address";
  } catch (const socket_error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(dual), std::string::npos) << m;
    EXPECT_EQ(e.identifier(), "timeout") << m;
  }
}
