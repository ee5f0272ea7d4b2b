// The command-line tool under attack (issue 9): truncation after our own close_notify, data that
// could not be delivered, secrets and files, and the messages it prints — each against a real
// peer or the tool itself as a process, with the exit status and the message checked.
#include <gtest/gtest.h>

#include <string>

#include "cli_run.hpp"
#include "loopback.hpp"

using namespace sslstream;
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

// --- data that could not be delivered, and data held back (item 13) -------------------------

TEST(CliTrust, KeepOpenWhoseStdoutFailsEndsEveryConnectionWithAnError) {
  // Before: the bytes went nowhere, listen went on, and its clients exited 0. Now the write
  // error is reported, the clients see a broken connection (exit 5), listen exits 1.
  for (std::string out : {"> /dev/full", "| head -c 0"}) {
    auto r = sh(R"SH(
dir=$(mktemp -d)
trap 'kill $lp 2>/dev/null; rm -rf "$dir"' EXIT
{ timeout 30 "$SSLSTREAM" listen --keep-open --port-file "$dir/port" --cert "$COMBINED" 2> "$dir/err"; echo $? > "$dir/status"; } )SH" +
                    out + R"SH( &
lp=$!
for i in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
sleep 0.2  # head -c 0 has exited: the pipe has no reader
printf 'lost bytes\n' | timeout 20 "$SSLSTREAM" connect -q localhost "$(cat "$dir/port")" --ca-file "$CA"
echo "client=$?"
wait $lp
for i in $(seq 200); do [ -s "$dir/status" ] && break; sleep 0.05; done
echo "listen=$(cat "$dir/status")"
cat "$dir/err"
)SH",
                60s);
    EXPECT_TRUE(says(r, "client=5")) << out << ": " << r.output;
    EXPECT_TRUE(says(r, "listen=1")) << out << ": " << r.output;
    EXPECT_TRUE(says(r, "sslstream listen: write to standard output: ")) << out << ": " << r.output;
    EXPECT_TRUE(says(r, "every connection was ended with an error")) << out << ": " << r.output;
  }
}

TEST(CliTrust, OneConnectionListenWhoseStdoutFailsEndsItWithAnError) {
  auto r = sh(R"SH(
dir=$(mktemp -d)
trap 'kill $lp 2>/dev/null; rm -rf "$dir"' EXIT
timeout 30 "$SSLSTREAM" listen --port-file "$dir/port" --cert "$COMBINED" < /dev/null > /dev/full 2> "$dir/err" &
lp=$!
for i in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
printf 'lost bytes\n' | timeout 20 "$SSLSTREAM" connect -q localhost "$(cat "$dir/port")" --ca-file "$CA"
echo "client=$?"
wait $lp; echo "listen=$?"
cat "$dir/err"
)SH",
              60s);
  EXPECT_TRUE(says(r, "client=5")) << r.output;
  EXPECT_TRUE(says(r, "listen=1")) << r.output;
  EXPECT_TRUE(says(r, "write to standard output: No space left on device")) << r.output;
}

namespace {

// In these scripts every tool runs under `timeout`: a tool that hangs (as before the fixes) must
// not outlive the test, which can only kill the script itself.

/// Runs listen and connect with `held` ("listen" or "connect") keeping its stdin open through a
/// fifo and the other sending a line and ending its stdin: the held side's stdout must end
/// (the peer's close_notify) while its stdin is still open. Then its stdin is closed too.
ran half_close_script(const std::string& held) {
  return sh(R"SH(
held=)SH" + held +
                R"SH(
dir=$(mktemp -d)
trap 'kill $lp $cp $rp 2>/dev/null; rm -rf "$dir"' EXIT
mkfifo "$dir/in" "$dir/out"
exec 3<>"$dir/in"   # the held side's stdin: open until we close fd 3
# The held tool alone has the fifo as stdout (not `timeout` too), so its end is the tool's.
to_out='exec "${@:1}" > "$0"' 
(cat "$dir/out" > "$dir/held.out"; touch "$dir/eof") 3>&- & rp=$!
if [ $held = listen ]; then
  timeout 30 bash -c "$to_out" "$dir/out" "$SSLSTREAM" listen -q --port-file "$dir/port" --cert "$COMBINED" < "$dir/in" 3>&- & lp=$!
  for i in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
  printf 'to listen\n' | timeout 20 "$SSLSTREAM" connect -q localhost "$(cat "$dir/port")" --ca-file "$CA" > "$dir/other.out" 3>&- & cp=$!
  held_pid=$lp
else
  printf 'to connect\n' | timeout 30 "$SSLSTREAM" listen -q --port-file "$dir/port" --cert "$COMBINED" > "$dir/other.out" 3>&- & lp=$!
  for i in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
  timeout 30 bash -c "$to_out" "$dir/out" "$SSLSTREAM" connect -q localhost "$(cat "$dir/port")" --ca-file "$CA" < "$dir/in" 3>&- & cp=$!
  held_pid=$cp
fi
for i in $(seq 200); do [ -e "$dir/eof" ] && break; sleep 0.05; done
[ -e "$dir/eof" ] && echo "stdout ended: yes" || echo "stdout ended: no"
kill -0 $held_pid 2>/dev/null && echo "held side still running: yes"
echo "held side read: $(cat "$dir/held.out")"
echo "reply" >&3; exec 3>&-
wait $cp; echo "connect=$?"
wait $lp; echo "listen=$?"
echo "other side read: $(cat "$dir/other.out")"
)SH",
            60s);
}

}  // namespace

TEST(CliTrust, StdoutEndsWhenThePeerHalfCloses) {
  // Before: stdout stayed open until the tool's own stdin ended, so a consumer of its output
  // waiting for the end (curl through socat, a fifo loop) waited for ever.
  for (std::string held : {"connect", "listen"}) {
    auto r = half_close_script(held);
    EXPECT_TRUE(says(r, "stdout ended: yes")) << held << ": " << r.output;
    EXPECT_TRUE(says(r, "held side still running: yes")) << held << ": " << r.output;
    EXPECT_TRUE(says(r, "held side read: to " + held + "\n")) << held << ": " << r.output;
    EXPECT_TRUE(says(r, "connect=0")) << held << ": " << r.output;
    EXPECT_TRUE(says(r, "listen=0")) << held << ": " << r.output;
    EXPECT_TRUE(says(r, "other side read: reply\n")) << held << ": " << r.output;
  }
}

TEST(CliTrust, OptionsThatWouldBeIgnoredAreRefused) {
  struct row {
    std::vector<std::string> args;
    std::string message;
  } rows[] = {
      {{"connect", "localhost", "1", "--key", cert("client-ec.key")}, "--key requires --cert"},
      {{"info", "localhost", "1", "--key", cert("client-ec.key")}, "--key requires --cert"},
      {{"listen", "--key", cert("server-ec.key")}, "--key requires --cert"},
      {{"connect", "localhost", "1", "--password", "x"}, "--password requires --cert"},
      {{"listen", "--max-connections", "3"}, "--max-connections requires --keep-open"},
      {{"listen", "--keep-open", "--exit-on-handshake-failure"}, "excludes"},
      {{"connect", "localhost", "1", "--exit-on-handshake-failure"}, "--exit-on-handshake-failure"},
  };
  for (const auto& row : rows) {
    auto argv = cmd({});
    argv.insert(argv.end(), row.args.begin(), row.args.end());
    auto r = run(argv, "", 10s);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_TRUE(says(r, row.message)) << r.output;
  }
}

TEST(CliTrust, PinIsRepeatableForKeyRotation) {
  process srv(cmd({"listen", "--keep-open", "--echo", "--max-connections", "3", "--cert",
                   cert("combined.pem")}));
  auto p = std::to_string(listening(srv));
  auto fp = x509_certificate::load_pem_file(cert("combined.pem")).fingerprint_sha256();
  std::string other = "sha256:" + std::string(64, 'a');
  // The new key's pin first, the current one second: either matching accepts.
  auto both =
      run(cmd({"connect", "localhost", p, "--pin", other, "--pin", "sha256:" + fp}), "rotated\n");
  EXPECT_EQ(both.status, 0) << both.output;
  EXPECT_TRUE(says(both, "rotated\n")) << both.output;
  auto info = run(cmd({"info", "localhost", p, "--pin", "sha256:" + fp, "--pin", other}));
  EXPECT_EQ(info.status, 0) << info.output;
  EXPECT_TRUE(says(info, "verify: pinned certificate matches")) << info.output;
  auto none = run(
      cmd({"connect", "localhost", p, "--pin", other, "--pin", "sha256:" + std::string(64, 'b')}),
      "x\n");
  EXPECT_EQ(none.status, 4) << none.output;
  EXPECT_TRUE(says(none, "is none of --pin")) << none.output;
  EXPECT_EQ(srv.wait(), 0) << srv.output();
  auto bad = run(cmd({"connect", "localhost", p, "--pin", "sha256:" + fp, "--pin", "xyz"}));
  EXPECT_EQ(bad.status, 2) << bad.output;
}

TEST(CliTrust, OneConnectionListenOutlivesAHealthCheck) {
  // A TCP health check connects and closes; a port scanner speaks plain text. Before: listen
  // exited 4 at the first of them and the real client found nobody.
  process srv(cmd({"listen", "--cert", cert("combined.pem"), "--echo"}));
  auto p = listening(srv);
  make_socket(active{.remote_host = "127.0.0.1", .remote_port = p}).close();
  {
    auto plain = make_socket(active{.remote_host = "127.0.0.1", .remote_port = p});
    plain << "GET / HTTP/1.0\r\n\r\n" << std::flush;
    ASSERT_TRUE(srv.wait_for_output("is the peer speaking TLS")) << srv.output();
  }
  auto r = run(cmd({"connect", "localhost", std::to_string(p), "--ca-file", ca()}), "served\n");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(says(r, "served\n")) << r.output;
  EXPECT_EQ(srv.wait(), 0) << srv.output();
  EXPECT_TRUE(
      srv.wait_for_output("(waiting for the next connection; "
                          "--exit-on-handshake-failure stops here)"))
      << srv.output();

  process strict(cmd({"listen", "--cert", cert("combined.pem"), "--exit-on-handshake-failure"}));
  auto sp = listening(strict);
  make_socket(active{.remote_host = "127.0.0.1", .remote_port = sp}).close();
  EXPECT_EQ(strict.wait(20s), 4) << strict.output();
}
