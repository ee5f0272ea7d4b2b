// Test support for the command-line tool: running `sslstream` as a user does (as a process,
// with stdin given and output collected, every wait bounded). SSLSTREAM_CLI is the built tool.
#pragma once

#include <chrono>
#include <csignal>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "process.hpp"

namespace testing_support {

inline const std::string cli_binary = SSLSTREAM_CLI;

/// `sslstream` followed by `args`.
inline std::vector<std::string> cmd(std::initializer_list<std::string> args) {
  std::vector<std::string> v{cli_binary};
  v.insert(v.end(), args);
  return v;
}

/// The port of a started `sslstream listen ...` once it is listening.
inline std::uint16_t listening(process& p) {
  auto port = p.wait_for_match(R"(listening on \S*:(\d+)\n)");
  if (!port) throw std::runtime_error("listen did not start: " + p.output());
  return static_cast<std::uint16_t>(std::stoul(*port));
}

struct ran {
  int status;  ///< -1: did not end within the limit (then killed)
  std::string output;
};

/// Runs `argv` with `input` on stdin to completion, bounded by `limit`.
inline ran run(std::vector<std::string> argv, const std::string& input = "",
               std::chrono::seconds limit = std::chrono::seconds(30)) {
  process p(std::move(argv));
  p.write_stdin(input);
  p.close_stdin();
  auto st = p.wait(limit);
  if (!st) {
    p.kill(SIGKILL);
    p.wait();
    return {-1, "TIMED OUT: " + p.output()};
  }
  p.drain(std::chrono::seconds(5));
  return {*st, p.output()};
}

/// A bash script, for pipelines of processes; each process it starts ends by its own id.
/// $SSLSTREAM, $CA and $COMBINED are set.
inline ran sh(const std::string& script, std::chrono::seconds limit = std::chrono::seconds(120)) {
  return run({"bash", "-c",
              "set -u\nSSLSTREAM=" + cli_binary + "\nCA=" + cert("ca.pem") +
                  "\nCOMBINED=" + cert("combined.pem") + "\n" + script},
             "", limit);
}

inline bool says(const ran& r, const std::string& text) {
  return r.output.find(text) != std::string::npos;
}

}  // namespace testing_support
