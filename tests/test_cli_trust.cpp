// The command-line tool under attack (issue 9): truncation after our own close_notify, data that
// could not be delivered, secrets and files, and the messages it prints — each against a real
// peer or the tool itself as a process, with the exit status and the message checked.
#include <gtest/gtest.h>

#include <string>

#include "cli_run.hpp"

using namespace testing_support;
using namespace std::chrono_literals;

namespace {

std::string ca() { return cert("ca.pem"); }

/// A Python ssl server that serves `count` connections the way some HTTP/1.0 servers and
/// gnutls-cli do: reads the request to the client's close_notify, sends a reply, and closes the
/// socket without a close_notify of its own (close() without unwrap()).
const char* truncating_server = R"PY(
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.create_server(("127.0.0.1", 0))
print("port", ls.getsockname()[1], flush=True)
for _ in range(int(sys.argv[3])):
    c, _ = ls.accept()
    s = ctx.wrap_socket(c, server_side=True)
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    s.sendall(b"reply to " + data)
    s.close()
)PY";

}  // namespace

TEST(CliTrust, ReplyCutAfterOurCloseNotifyIsExit5UnlessAllowed) {
  // `printf ... | connect`: stdin ends at once, so our close_notify goes first; the reply then
  // ends with a FIN alone. Before: exit 0, as if the reply were whole.
  process py(
      {"python3", "-c", truncating_server, cert("server-rsa.pem"), cert("server-rsa.key"), "2"});
  auto port = py.wait_for_match(R"(port (\d+)\n)");
  ASSERT_TRUE(port) << py.output();

  auto cut = run(cmd({"connect", "localhost", *port, "--ca-file", ca()}), "GET /\n");
  EXPECT_EQ(cut.status, 5) << cut.output;
  EXPECT_TRUE(says(cut, "reply to GET /\n")) << cut.output;  // the bytes are still delivered
  EXPECT_TRUE(says(cut, "without sending its own: the data it sent may be truncated"))
      << cut.output;
  EXPECT_TRUE(says(cut, "--allow-truncation")) << cut.output;

  auto allowed =
      run(cmd({"connect", "localhost", *port, "--ca-file", ca(), "--allow-truncation"}), "GET /\n");
  EXPECT_EQ(allowed.status, 0) << allowed.output;
  EXPECT_TRUE(says(allowed, "reply to GET /\n")) << allowed.output;
  EXPECT_TRUE(says(allowed, "accepted: --allow-truncation")) << allowed.output;
  EXPECT_EQ(py.wait(10s), 0) << py.output();
}

TEST(CliTrust, AllowTruncationOnlyWhereItMeansSomething) {
  // Only the stdin/stdout relay sends close_notify before the peer: elsewhere the flag would be
  // accepted and ignored, so it is refused.
  struct row {
    std::vector<std::string> args;
    std::string message;
  } rows[] = {
      {{"listen", "--keep-open", "--allow-truncation"}, "--allow-truncation"},
      {{"listen", "--echo", "--allow-truncation"}, "--allow-truncation"},
      {{"info", "localhost", "1", "--allow-truncation"}, "--allow-truncation"},
  };
  for (const auto& row : rows) {
    auto argv = cmd({});
    argv.insert(argv.end(), row.args.begin(), row.args.end());
    auto r = run(argv, "", 10s);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_TRUE(says(r, row.message)) << r.output;
    if (row.args[0] == "listen") {
      EXPECT_TRUE(says(r, "excludes")) << r.output;
      EXPECT_TRUE(says(r, row.args[1])) << r.output;
    }
  }
}
