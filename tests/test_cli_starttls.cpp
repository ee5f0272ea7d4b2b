// `connect --starttls` and `info --starttls` (DESIGN.md §7) against real servers run on
// loopback by the test, unprivileged: PostgreSQL, Dovecot (IMAP, POP3), slapd (LDAP) and
// aiosmtpd (SMTP); FTP and XMPP, and the misbehaviours no real server shows (injecting bytes
// after the go-ahead, stalling), against tests/support/starttls_server.py, which follows each
// RFC's exchange and then speaks TLS through Python's ssl module. openssl s_client -starttls is
// the reference: where it succeeds against a server, so must we.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sslstream/sslstream.hpp>
#include <string>

#include "cli_run.hpp"
#include "timing.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string python = "/usr/bin/python3";  // Debian's, with its python3-aiosmtpd
const std::string scripted = SSLSTREAM_STARTTLS_SERVER;
const std::vector<std::string> protocols{"smtp", "imap", "pop3", "ftp", "xmpp", "postgres", "ldap"};

std::string ca() { return cert("ca.pem"); }
std::string fingerprint() {
  return x509_certificate::load_pem_file(cert("server-rsa.pem")).fingerprint_sha256();
}

/// The servers refuse to run as root (PostgreSQL) or should not: as root, the test runs them
/// as nobody through setpriv, in a directory nobody owns.
bool root() { return ::geteuid() == 0; }
std::vector<std::string> unprivileged(std::vector<std::string> argv) {
  if (root())
    argv.insert(argv.begin(), {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"});
  return argv;
}

/// A directory for one server, with a copy of the test server's certificate and key, owned by
/// the user the server runs as; removed at the end.
struct server_dir {
  fs::path path;
  explicit server_dir(const std::string& name)
      : path(fs::temp_directory_path() /
             ("sslstream-starttls-" + name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
    fs::copy_file(cert("server-rsa.pem"), path / "server.pem");
    fs::copy_file(cert("server-rsa.key"), path / "server.key");
    fs::permissions(path / "server.key", fs::perms::owner_read | fs::perms::owner_write);
    if (root()) {
      const passwd* nobody = ::getpwnam("nobody");
      if (!nobody) throw std::runtime_error("no user nobody to run the servers as");
      for (const auto& e : fs::recursive_directory_iterator(path))
        if (::chown(e.path().c_str(), nobody->pw_uid, nobody->pw_gid) != 0)
          throw std::runtime_error("chown " + e.path().string());
      if (::chown(path.c_str(), nobody->pw_uid, nobody->pw_gid) != 0)
        throw std::runtime_error("chown " + path.string());
    }
  }
  ~server_dir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
  void write(const std::string& f, const std::string& text) const {
    std::ofstream(path / f) << text;
  }
};

/// A port nobody listens on now, for servers that cannot be told to choose one.
std::uint16_t free_port() {
  auto l = make_socket(passive{.local_host = "127.0.0.1"});
  return l.local_port();
}

/// Waits until something accepts TCP connections on 127.0.0.1:port.
bool accepting(std::uint16_t port, process& server, std::chrono::seconds limit = 60s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    try {
      make_socket(active{.remote_host = "127.0.0.1", .remote_port = port, .connect_timeout = 2s});
      return true;
    } catch (const socket_error&) {
      if (server.wait(100ms)) return false;  // it exited: its output says why
    }
  }
  return false;
}

/// Stops a server with `sig` (each has its own clean stop), bounded; the process's destructor
/// kills whatever is left.
void stop(process& p, int sig = SIGTERM) {
  p.kill(sig);
  p.wait(20s);
}

bool installed(const std::string& path) { return fs::exists(path); }

/// `info` verified the server: exit 0, the right certificate, "verify: ok".
void expect_verified(const ran& r, const std::string& what) {
  EXPECT_EQ(r.status, 0) << what << ": " << r.output;
  EXPECT_TRUE(says(r, "verify: ok (trusted chain, name matches localhost)")) << what << r.output;
  EXPECT_TRUE(says(r, "sha256: " + fingerprint())) << what << r.output;
}

ran info(const std::string& proto, std::uint16_t port, std::vector<std::string> more = {}) {
  std::vector<std::string> argv{cli_binary,   "info", "localhost", std::to_string(port),
                                "--starttls", proto,  "--ca-file", ca()};
  argv.insert(argv.end(), more.begin(), more.end());
  return run(argv);
}

/// openssl s_client -starttls against the same server: the reference says it works.
void expect_openssl_agrees(const std::string& proto, std::uint16_t port) {
  std::vector<std::string> argv{"openssl",
                                "s_client",
                                "-starttls",
                                proto,
                                "-connect",
                                "127.0.0.1:" + std::to_string(port),
                                "-CAfile",
                                ca(),
                                "-verify_hostname",
                                "localhost",
                                "-verify_return_error",
                                "-brief"};
  if (proto == "xmpp") argv.insert(argv.end(), {"-xmpphost", "localhost"});
  auto r = run(argv);
  EXPECT_TRUE(says(r, "Verification: OK"))
      << "openssl s_client -starttls " << proto << ": " << r.output;
}

/// The scripted server, in one mode, serving one connection.
struct scripted_server {
  process p;
  std::uint16_t port;
  scripted_server(const std::string& proto, const std::string& mode)
      : p({python, scripted, proto, mode, cert("server-rsa.pem"), cert("server-rsa.key")}),
        port(listening(p)) {}
};

TEST(StartTls, UnknownProtocolIsAUsageError) {
  for (std::string sub : {"connect", "info"}) {
    auto r = run(cmd({sub, "localhost", "1", "--starttls", "smtps"}));
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_TRUE(says(r, "expects one of smtp, imap, pop3, ftp, xmpp, postgres, ldap, not 'smtps'"))
        << r.output;
  }
  auto help = run(cmd({"connect", "--help"}));
  EXPECT_TRUE(says(help, "--starttls")) << help.output;
  EXPECT_TRUE(says(help, "--starttls smtp")) << help.output;  // the example
}

TEST(StartTlsScripted, EveryProtocolVerifies) {
  for (const auto& proto : protocols) {
    scripted_server s(proto, "ok");
    expect_verified(info(proto, s.port), proto);
    scripted_server reference(proto, "ok");
    expect_openssl_agrees(proto, reference.port);
  }
}

TEST(StartTlsScripted, ConnectRelaysOverTheUpgradedConnection) {
  for (std::string proto : {"ftp", "xmpp"}) {
    scripted_server s(proto, "ok");
    auto r = run(cmd({"connect", "localhost", std::to_string(s.port), "--starttls", proto,
                      "--ca-file", ca(), "--allow-truncation"}));
    EXPECT_EQ(r.status, 0) << proto << ": " << r.output;
    EXPECT_TRUE(says(r, "tls-ok " + proto)) << proto << ": " << r.output;
  }
}

TEST(StartTlsScripted, RefusalSaysWhatTheServerAnswered) {
  const std::map<std::string, std::string> answers{
      {"smtp", "the server does not offer STARTTLS (its EHLO reply: 250-test.example"},
      {"imap",
       "the server does not offer STARTTLS (its capabilities: * CAPABILITY IMAP4rev1 "
       "LOGINDISABLED"},
      {"pop3", "the server does not offer STLS (its CAPA reply: USER | UIDL"},
      {"ftp", "the server refused AUTH TLS: 504 AUTH TLS not supported here"},
      {"xmpp", "the server does not offer <starttls/> in its features"},
      {"postgres", "the server answered N to SSLRequest"},
      {"ldap", "the server refused StartTLS: resultCode 2 (protocolError"},
  };
  for (const auto& [proto, answer] : answers) {
    scripted_server s(proto, "refuse");
    auto r = info(proto, s.port);
    EXPECT_EQ(r.status, 4) << proto << ": " << r.output;
    EXPECT_TRUE(says(r, "sslstream info: STARTTLS (" + proto + "): " + answer))
        << proto << ": " << r.output;
    s.p.wait(10s);
    EXPECT_FALSE(s.p.output().find("handshake done") != std::string::npos) << s.p.output();
  }
}

TEST(StartTlsScripted, BytesAfterTheGoAheadAreRefused) {
  for (const auto& proto : protocols) {
    scripted_server s(proto, "inject");
    auto r = info(proto, s.port);
    EXPECT_EQ(r.status, 4) << proto << ": " << r.output;
    EXPECT_TRUE(says(r, "more bytes right after its go-ahead (250 injected)")) << r.output;
    EXPECT_TRUE(says(r, "STARTTLS injection")) << r.output;
    s.p.wait(10s);  // no TLS was started on them
    EXPECT_FALSE(s.p.output().find("handshake done") != std::string::npos) << s.p.output();
  }
}

TEST(StartTlsScripted, AStalledPreambleEndsAtTheConnectTimeout) {
  // --connect-timeout 1 bounds the whole exchange; slack: process start and exit, loaded CI.
  const auto slack = 3000ms;
  for (const auto& proto : protocols) {
    scripted_server s(proto, "stall");
    auto start = std::chrono::steady_clock::now();
    auto r = info(proto, s.port, {"--connect-timeout", "1"});
    auto took = ms_since(start);
    EXPECT_EQ(r.status, 4) << proto << ": " << r.output;
    EXPECT_TRUE(says(r, "did not come within 1 s (--connect-timeout")) << r.output;
    EXPECT_GE(took, 1000) << proto;
    EXPECT_LT(took, 1000 + slack.count()) << proto << ": " << r.output;
  }
}

TEST(StartTlsScripted, EndlessRepliesAreCutAtTheirLimits) {
  // Neither waits for the timeout: each is refused as soon as its limit is passed.
  scripted_server longline("smtp", "longline");
  auto start = std::chrono::steady_clock::now();
  auto r = info("smtp", longline.port);
  EXPECT_EQ(r.status, 4) << r.output;
  EXPECT_TRUE(says(r,
                   "STARTTLS (smtp): the server sent a line of more than 8192 bytes while we "
                   "waited for the greeting: 220 xxx"))
      << r.output;
  EXPECT_LT(ms_since(start), 10000) << r.output;  // the --connect-timeout is 30 s
  scripted_server flood("smtp", "flood");
  r = info("smtp", flood.port);
  EXPECT_EQ(r.status, 4) << r.output;
  EXPECT_TRUE(says(r,
                   "STARTTLS (smtp): the server sent more than 65536 bytes while we waited "
                   "for the greeting"))
      << r.output;
  EXPECT_LT(ms_since(start), 20000) << r.output;
}

TEST(StartTlsReal, PostgreSql) {
  const std::string bin = "/usr/lib/postgresql/15/bin/";
  if (!installed(bin + "postgres")) GTEST_SKIP() << "postgresql-15 not installed";
  server_dir d("postgres");
  auto init = run(unprivileged({bin + "initdb", "-D", d / "data", "-A", "trust", "-U", "postgres",
                                "--no-sync"}),
                  "", 120s);
  ASSERT_EQ(init.status, 0) << init.output;
  for (std::string ssl : {"on", "off"}) {
    auto port = free_port();
    process pg(unprivileged({bin + "postgres", "-D", d / "data", "-k", d.path.string(), "-p",
                             std::to_string(port), "-h", "127.0.0.1", "-c", "ssl=" + ssl, "-c",
                             "ssl_cert_file=" + d / "server.pem", "-c",
                             "ssl_key_file=" + d / "server.key"}));
    ASSERT_TRUE(pg.wait_for_output("ready to accept connections", 60s)) << pg.output();
    if (ssl == "on") {
      expect_verified(info("postgres", port), "postgres");
      expect_openssl_agrees("postgres", port);
    } else {
      auto r = info("postgres", port);
      EXPECT_EQ(r.status, 4) << r.output;
      EXPECT_TRUE(says(r,
                       "STARTTLS (postgres): the server answered N to SSLRequest: it does "
                       "not accept TLS (ssl = off in its postgresql.conf)"))
          << r.output;
    }
    stop(pg, SIGINT);  // fast shutdown
  }
}

std::string dovecot_conf(const server_dir& d, std::uint16_t imap, std::uint16_t pop3, bool tls) {
  const std::string p = d.path.string();
  // Every service runs as the user running Dovecot (nobody under root, else ourselves), and
  // none in a chroot: nothing needs root.
  const passwd* pw = root() ? ::getpwnam("nobody") : ::getpwuid(::geteuid());
  const struct group* gr = pw ? ::getgrgid(pw->pw_gid) : nullptr;
  if (!pw || !gr) throw std::runtime_error("no user or group to run Dovecot as");
  const std::string user = pw->pw_name, group_name = gr->gr_name;
  auto listener = [](const std::string& service, const std::string& name, std::uint16_t port) {
    return "service " + service + " {\n  chroot =\n  inet_listener " + name +
           " {\n    address = 127.0.0.1\n    port = " + std::to_string(port) +
           "\n  }\n  inet_listener " + name + "s {\n    port = 0\n  }\n}\n";
  };
  return "protocols = imap pop3\nlisten = 127.0.0.1\n"
         "base_dir = " +
         p + "/run\nstate_dir = " + p +
         "/state\nlog_path = /dev/stderr\n"
         "ssl = " +
         (tls ? "yes" : "no") + "\nssl_cert = <" + p +
         "/server.pem\n"
         "ssl_key = <" +
         p +
         "/server.key\n"
         "default_internal_user = " +
         user + "\ndefault_internal_group = " + group_name +
         "\n"
         "default_login_user = " +
         user + "\n" + listener("imap-login", "imap", imap) + listener("pop3-login", "pop3", pop3) +
         "service anvil {\n  chroot =\n}\nservice imap-urlauth-login {\n  chroot =\n}\n"
         "passdb {\n  driver = static\n  args = password=unused\n}\n"
         "userdb {\n  driver = static\n  args = uid=" +
         user + " gid=" + group_name + " home=" + p + "/home\n}\nmail_location = maildir:" + p +
         "/mail\n";
}

TEST(StartTlsReal, DovecotImapAndPop3) {
  if (!installed("/usr/sbin/dovecot") || !installed("/usr/lib/dovecot/imap-login") ||
      !installed("/usr/lib/dovecot/pop3-login"))
    GTEST_SKIP() << "dovecot-imapd / dovecot-pop3d not installed";
  for (bool tls : {true, false}) {
    server_dir d(tls ? "dovecot" : "dovecot-plain");
    auto imap = free_port(), pop3 = free_port();
    d.write("dovecot.conf", dovecot_conf(d, imap, pop3, tls));
    process dovecot(unprivileged({"/usr/sbin/dovecot", "-c", d / "dovecot.conf", "-F"}));
    ASSERT_TRUE(accepting(imap, dovecot)) << dovecot.output();
    ASSERT_TRUE(accepting(pop3, dovecot)) << dovecot.output();
    if (tls) {
      expect_verified(info("imap", imap), "imap");
      expect_verified(info("pop3", pop3), "pop3");
      expect_openssl_agrees("imap", imap);
      expect_openssl_agrees("pop3", pop3);
      // connect: the server's first words inside TLS are the answer to what we send.
      auto r = run(cmd({"connect", "localhost", std::to_string(imap), "--starttls", "imap",
                        "--ca-file", ca(), "--allow-truncation"}),
                   "a1 NOOP\r\na2 LOGOUT\r\n");
      EXPECT_EQ(r.status, 0) << r.output;
      EXPECT_TRUE(says(r, "a1 OK")) << r.output;
    } else {
      auto r = info("imap", imap);
      EXPECT_EQ(r.status, 4) << r.output;
      EXPECT_TRUE(says(r, "STARTTLS (imap): the server does not offer STARTTLS")) << r.output;
      r = info("pop3", pop3);
      EXPECT_EQ(r.status, 4) << r.output;
      EXPECT_TRUE(says(r, "STARTTLS (pop3): the server does not offer STLS")) << r.output;
    }
    stop(dovecot);
  }
}

TEST(StartTlsReal, SlapdLdap) {
  if (!installed("/usr/sbin/slapd")) GTEST_SKIP() << "slapd not installed";
  for (bool tls : {true, false}) {
    server_dir d(tls ? "slapd" : "slapd-plain");
    auto port = free_port();
    std::string conf = "pidfile " + d / "slapd.pid" + "\n";
    if (tls)
      conf += "TLSCertificateFile " + d / "server.pem" + "\nTLSCertificateKeyFile " +
              d / "server.key" + "\n";
    d.write("slapd.conf", conf);
    process slapd(
        unprivileged({"/usr/sbin/slapd", "-d", "0", "-h",
                      "ldap://127.0.0.1:" + std::to_string(port) + "/", "-f", d / "slapd.conf"}));
    ASSERT_TRUE(accepting(port, slapd)) << slapd.output();
    if (tls) {
      expect_verified(info("ldap", port), "ldap");
      expect_openssl_agrees("ldap", port);
    } else {
      auto r = info("ldap", port);
      EXPECT_EQ(r.status, 4) << r.output;
      EXPECT_TRUE(says(r, "STARTTLS (ldap): the server refused StartTLS: resultCode")) << r.output;
    }
    stop(slapd);
  }
}

TEST(StartTlsReal, AiosmtpdSmtp) {
  if (run({python, "-c", "import aiosmtpd"}).status != 0)
    GTEST_SKIP() << "python3-aiosmtpd not installed";
  server_dir d("aiosmtpd");
  auto port = free_port();
  process smtp(
      unprivileged({python, "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + std::to_string(port),
                    "--tlscert", d / "server.pem", "--tlskey", d / "server.key"}));
  ASSERT_TRUE(accepting(port, smtp)) << smtp.output();
  expect_verified(info("smtp", port), "smtp");
  expect_openssl_agrees("smtp", port);
  // stdin stays open until QUIT's answer is back: ended at once, our close_notify could reach
  // the server before it answered, and aiosmtpd then closes without answering (seen under
  // ASan). The server closes after 221; connect then ends by itself (or its stdin is closed).
  process c(cmd({"connect", "localhost", std::to_string(port), "--starttls", "smtp", "--ca-file",
                 ca(), "--allow-truncation"}));
  c.write_stdin("EHLO client.example\r\nQUIT\r\n");
  EXPECT_TRUE(c.wait_for_output("221", 20s)) << c.output();  // QUIT's answer came back over TLS
  c.close_stdin();
  EXPECT_EQ(c.wait(20s), 0) << c.output();
  stop(smtp);
}

}  // namespace
