// The command-line tool as part of the system: --version, unknown subcommands, the man page and
// the bash completion, --cert-out for scripts that run listen with -q, and how a relay ends when
// the peer closes the whole connection (close_notify, then FIN) or only its sending side.
#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "cli_run.hpp"
#include "loopback.hpp"
#include "temp_dir.hpp"
#include "timing.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

/// The port in `port_file` once listen has written it (within 10 s), or "".
std::string port_from(const std::string& port_file) {
  std::string port;
  for (int i = 0; i < 200 && port.empty(); ++i) {
    std::ifstream(port_file) >> port;
    if (port.empty()) std::this_thread::sleep_for(50ms);
  }
  return port;
}

/// The completions bash offers for the words of `line` (the last one being completed, "" for
/// a new word), from the installed-style completion script, for the built tool.
std::vector<std::string> completions(const std::vector<std::string>& words) {
  std::string script = "source '" SSLSTREAM_BASH_COMPLETION "'\nCOMP_WORDS=('" + cli_binary + "'";
  for (const auto& w : words) script += " '" + w + "'";
  script += ")\nCOMP_CWORD=" + std::to_string(words.size()) +
            "\n_sslstream\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
            // The function is the one registered for the command.
            "complete -p sslstream >&2\n";
  auto r = run({"bash", "--norc", "-c", script}, "", 20s);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(says(r, "complete -F _sslstream sslstream")) << r.output;
  std::vector<std::string> out;
  std::istringstream lines(r.output);
  for (std::string l; std::getline(lines, l);)
    if (!l.empty() && l.rfind("complete ", 0) != 0) out.push_back(l);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(CliSystem, VersionNamesTheToolAndItsOpenssl) {
  for (std::string flag : {"--version", "-V"}) {
    auto r = run(cmd({flag}));
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.rfind("sslstream " SSLSTREAM_VERSION "\n", 0), 0u) << r.output;
    EXPECT_TRUE(says(r, OpenSSL_version(OPENSSL_VERSION))) << r.output;
  }
  auto help = run(cmd({"--help"}));
  EXPECT_EQ(help.status, 0);
  EXPECT_TRUE(says(help, "-V,--version")) << help.output;
}

TEST(CliSystem, UnknownSubcommandIsNamedWithAHint) {
  // Before: "A subcommand is required" for `sslstream foo`.
  auto foo = run(cmd({"foo"}));
  EXPECT_EQ(foo.status, 2) << foo.output;
  EXPECT_EQ(foo.output,
            "sslstream: unknown subcommand foo (the subcommands are listen, connect, info, cert, "
            "demo, bench); see sslstream --help\n");
  auto lis = run(cmd({"lis", "--port", "0"}));
  EXPECT_EQ(lis.status, 2) << lis.output;
  EXPECT_TRUE(says(lis, "unknown subcommand lis (did you mean listen?); see sslstream --help"))
      << lis.output;
  auto none = run(cmd({}));
  EXPECT_EQ(none.status, 2) << none.output;
  EXPECT_TRUE(says(none, "a subcommand is required: listen, connect")) << none.output;
  auto empty = run(cmd({""}));
  EXPECT_EQ(empty.status, 2) << empty.output;
  EXPECT_TRUE(says(empty, "unknown subcommand ")) << empty.output;
  auto option = run(cmd({"--no-such-option"}));
  EXPECT_EQ(option.status, 2) << option.output;
  EXPECT_TRUE(says(option, "see sslstream --help")) << option.output;
}

TEST(CliSystem, CertOutSavesTheGeneratedCertificateForAQuietListen) {
  temp_dir dir("cert-out");
  // A symlink planted at the path is replaced, never written through.
  std::ofstream(dir / "victim") << "untouched\n";
  fs::create_symlink(dir / "victim", dir / "listen.pem");
  process srv(cmd({"listen", "-q", "--cert-out", dir / "listen.pem", "--port-file", dir / "port"}));
  auto port = port_from(dir / "port");
  ASSERT_FALSE(port.empty()) << srv.output();
  EXPECT_EQ(read_file(dir / "victim"), "untouched\n");
  ASSERT_FALSE(fs::is_symlink(dir / "listen.pem"));
  auto pem = read_file(dir / "listen.pem");
  EXPECT_EQ(pem.rfind("-----BEGIN CERTIFICATE-----\n", 0), 0u) << pem;
  EXPECT_EQ(pem.find("PRIVATE KEY"), std::string::npos) << "the key must never be saved";
  // Trusting the saved certificate reaches exactly this listen, and -q printed nothing.
  auto fingerprint = x509_certificate::from_pem(pem).fingerprint_sha256();
  srv.write_stdin("to connect\n");
  srv.close_stdin();
  auto r = run(cmd({"connect", "-q", "localhost", port, "--ca-file", dir / "listen.pem", "--pin",
                    "sha256:" + fingerprint}),
               "to listen\n");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "to connect\n");
  EXPECT_EQ(srv.wait(), 0) << srv.output();
  srv.drain(5s);
  EXPECT_EQ(srv.output(), "to listen\n");
}

TEST(CliSystem, CertOutBadUses) {
  temp_dir dir("cert-out-bad");
  auto with_cert =
      run(cmd({"listen", "--cert", cert("combined.pem"), "--cert-out", dir / "c.pem"}));
  EXPECT_EQ(with_cert.status, 2) << with_cert.output;
  EXPECT_TRUE(says(with_cert, "--cert excludes --cert-out")) << with_cert.output;
  EXPECT_FALSE(fs::exists(dir / "c.pem"));
  auto no_dir = run(cmd({"listen", "--cert-out", dir / "missing/c.pem"}));
  EXPECT_EQ(no_dir.status, 2) << no_dir.output;
  EXPECT_TRUE(says(no_dir, "--cert-out")) << no_dir.output;
  EXPECT_FALSE(says(no_dir, "listening on")) << "it must fail before listening: " << no_dir.output;
  auto no_value = run(cmd({"listen", "--cert-out"}));
  EXPECT_EQ(no_value.status, 2) << no_value.output;
  EXPECT_TRUE(says(no_value, "--cert-out")) << no_value.output;
}

TEST(CliSystem, BashCompletion) {
  EXPECT_EQ(completions({"li"}), std::vector<std::string>{"listen"});
  EXPECT_EQ(completions({""}),
            (std::vector<std::string>{"bench", "cert", "connect", "demo", "info", "listen"}));
  EXPECT_EQ(completions({"--v"}), std::vector<std::string>{"--version"});
  EXPECT_EQ(completions({"listen", "--ke"}),
            (std::vector<std::string>{"--keep-open", "--key", "--keylog"}));
  EXPECT_EQ(completions({"listen", "--cert-o"}), std::vector<std::string>{"--cert-out"});
  EXPECT_EQ(completions({"connect", "--verify", ""}),
            (std::vector<std::string>{"none", "optional", "required"}));
  EXPECT_EQ(completions({"cert", "--key-type", ""}),
            (std::vector<std::string>{"ec256", "rsa2048"}));
  // A file option completes file names.
  auto files = completions({"listen", "--cert", SSLSTREAM_TEST_CERTS "/ca.p"});
  EXPECT_EQ(files, std::vector<std::string>{SSLSTREAM_TEST_CERTS "/ca.pem"});
}

#ifdef SSLSTREAM_MAN_PAGE
TEST(CliSystem, ManPageRendersWithEveryOptionOfEverySubcommand) {
  auto r = run({"man", "--warnings", "-l", SSLSTREAM_MAN_PAGE}, "", 30s);
  EXPECT_EQ(r.status, 0) << r.output;
  for (std::string section : {"NAME", "SYNOPSIS", "DESCRIPTION", "LISTEN", "CONNECT", "EXIT STATUS",
                              "EXAMPLES", "sslstream " SSLSTREAM_VERSION})
    EXPECT_TRUE(says(r, section)) << section;
  EXPECT_FALSE(says(r, "warning")) << r.output.substr(0, 2000);
  // Every option any subcommand's --help lists is described in the reference.
  auto reference = read_file(SSLSTREAM_REFERENCE);
  for (std::string sub : {"listen", "connect", "info", "cert", "demo", "bench"}) {
    auto help = run(cmd({sub, "--help"}));
    std::istringstream lines(help.output);
    for (std::string l; std::getline(lines, l);) {
      if (l.rfind("  -", 0) != 0) continue;
      std::istringstream names(l.substr(2, l.find(' ', 2) - 2));
      for (std::string name; std::getline(names, name, ',');) {
        if (name == "-h" || name == "--help") continue;
        EXPECT_TRUE(std::regex_search(reference, std::regex(name + "[^a-z-]")))
            << sub << " " << name << " is not in docs/sslstream.md";
      }
    }
  }
}
#endif
