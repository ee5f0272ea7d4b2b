// How sslstream's relay ends when the peer ends: a peer that said close_notify and then
// closed the whole connection (FIN) ends connect or listen at once, even with stdin still open
// (as s_client does); a peer that closed only its sending side (close_notify, connection kept)
// may still be written to until stdin ends.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>
#include <string_view>

#include "cli_run.hpp"
#include "loopback.hpp"
#include "timing.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;

TEST(CliClose, ConnectExitsWhenGnutlsServerClosesTheConnection) {
  // gnutls-serv --http answers a request with a page, close_notify, and then closes the
  // connection. connect, whose stdin stays open, must exit then (as s_client does), not wait
  // for its stdin. Before: it waited until its stdin ended. (openssl s_server -www waits for
  // our close_notify before it closes, and at the end of its stdin it closes without one.)
  process gnutls({"gnutls-serv", "--http", "--port=0", "--x509certfile", cert("server-ec.pem"),
                  "--x509keyfile", cert("server-ec.key")});
  auto port = listening_port(gnutls.pid());
  ASSERT_TRUE(port) << gnutls.output();
  process cli(cmd({"connect", "localhost", std::to_string(*port), "--ca-file", cert("ca.pem")}));
  cli.write_stdin("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(cli.wait_for_output("</HTML>")) << cli.output();
  auto t0 = std::chrono::steady_clock::now();
  auto status = cli.wait(2s);  // it should take milliseconds; 2 s is slack for a loaded machine
  EXPECT_TRUE(status) << "connect still running " << ms_since(t0) << " ms after the server closed";
  EXPECT_EQ(status.value_or(-1), 0) << cli.output();
}

TEST(CliClose, RelayEndsAtTheFinAfterCloseNotifyAndNotBefore) {
  // Our own TLS server: close_notify first, then (only once the test says so) the FIN.
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  process cli(cmd({"connect", "localhost", std::to_string(listener.local_port()), "--ca-file",
                   cert("ca.pem")}));
  auto ctx = make_ssl_server_context(tls_server_options("ec"));
  auto s = make_ssl_server_stream(accept_within(listener, "sslstream connect"), ctx);
  s.do_handshake();
  s.write_all(std::as_bytes(std::span(std::string_view("bye\n"))));
  s.shutdown(direction::output);  // close_notify, the connection still open
  ASSERT_TRUE(cli.wait_for_output("bye\n")) << cli.output();
  // A half-closed server may still be reading: connect keeps going.
  EXPECT_FALSE(cli.wait(500ms)) << "connect ended at close_notify alone: " << cli.output();
  cli.write_stdin("still heard\n");
  std::array<std::byte, 64> b{};
  auto n = s.read_some(b);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), n), "still heard\n");
  ::shutdown(s.native_handle(), SHUT_WR);  // now the FIN
  auto t0 = std::chrono::steady_clock::now();
  auto status = cli.wait(2s);  // milliseconds expected; 2 s of slack
  EXPECT_TRUE(status) << "connect still running " << ms_since(t0) << " ms after the FIN";
  EXPECT_EQ(status.value_or(-1), 0) << cli.output();
}

TEST(CliClose, ServerThatClosedOnlyItsSendingSideCanStillBeWrittenTo) {
  // listen at the end of its stdin sends close_notify but keeps reading (TLS half close).
  process srv(cmd({"listen", "--cert", cert("server-rsa.pem"), "--key", cert("server-rsa.key")}));
  auto port = listening(srv);
  srv.write_stdin("from listen\n");
  srv.close_stdin();
  process cli(cmd({"connect", "localhost", std::to_string(port), "--ca-file", cert("ca.pem")}));
  ASSERT_TRUE(cli.wait_for_output("from listen\n")) << cli.output();
  EXPECT_FALSE(cli.wait(500ms)) << "connect ended at close_notify alone: " << cli.output();
  cli.write_stdin("written after its close_notify\n");
  ASSERT_TRUE(srv.wait_for_output("written after its close_notify\n")) << srv.output();
  cli.close_stdin();
  EXPECT_EQ(cli.wait(), 0) << cli.output();
  EXPECT_EQ(srv.wait(), 0) << srv.output();
}

TEST(CliClose, ListenExitsWhenItsClientClosesTheConnection) {
  // The same rule the other way: a client that said close_notify and closed the connection
  // ends listen, whose stdin stays open.
  process srv(cmd({"listen", "--cert", cert("server-ec.pem"), "--key", cert("server-ec.key")}));
  auto port = listening(srv);
  {
    auto c = make_ssl_client_stream(make_socket({.remote_host = "127.0.0.1", .remote_port = port}),
                                    client_options());
    c.write_all(std::as_bytes(std::span(std::string_view("from client\n"))));
    c.shutdown(direction::output);
    ::shutdown(c.native_handle(), SHUT_WR);
    ASSERT_TRUE(srv.wait_for_output("from client\n")) << srv.output();
    auto t0 = std::chrono::steady_clock::now();
    auto status = srv.wait(2s);  // milliseconds expected; 2 s of slack
    EXPECT_TRUE(status) << "listen still running " << ms_since(t0) << " ms after the FIN";
    EXPECT_EQ(status.value_or(-1), 0) << srv.output();
  }
}
