// The tutorial's two programs, run as a user runs them in two terminals.
#include <gtest/gtest.h>

#include <regex>

#include "loopback.hpp"

using namespace testing_support;

TEST(Tutorial, TwoProgramsExchangeTheSecretMessage) {
  std::string dir = SSLSTREAM_TUTORIAL_DIR;
  process server({dir + "/tutorial_server"});
  ASSERT_TRUE(server.wait_for_output("assigned.")) << server.output();
  std::smatch m;
  std::string out = server.output();
  ASSERT_TRUE(std::regex_search(
      out, m, std::regex(R"(#<passive socket waiting for connection at \*/(\d+)>)")));
  process client({dir + "/tutorial_client", m[1].str()});
  EXPECT_EQ(client.wait(), 0) << client.output();
  EXPECT_EQ(server.wait(), 0) << server.output();
  client.drain();
  server.drain();
  EXPECT_NE(server.output().find("read: secret\nread: message\nwrote: got-it"), std::string::npos)
      << server.output();
  EXPECT_NE(client.output().find("wrote: secret message\nread: got-it"), std::string::npos)
      << client.output();
  EXPECT_NE(server.output().find("#<passive socket closed, but was waiting for connection at */" +
                                 m[1].str()),
            std::string::npos);
}
