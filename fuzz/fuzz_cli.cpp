// Fuzz target: the command line's option parsing. The input is split at NUL bytes into
// arguments; they are parsed exactly as `sslstream` parses its own, and when a subcommand with
// TLS flags is chosen, its flags are turned into library options (pins, versions, ALPN lists).
// Nothing is run: no network, no files. A usage error is the expected outcome of a bad command
// line; any other exception, crash or sanitizer report is a finding.
#include <string>
#include <vector>

#include "cli.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"sslstream"};
  std::string cur;
  for (std::size_t i = 0; i < size && args.size() < 64; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(data[i]);
    }
  }
  if (!cur.empty()) args.push_back(cur);
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());

  CLI::App app{"sslstream"};
  cli::command chosen;
  cli::add_all(app, chosen);
  if (cli::parse(app, static_cast<int>(argv.size()), argv.data())) return 0;
  if (!chosen.run) __builtin_trap();  // parsed, yet nothing chosen: a bug
  if (chosen.tls) {
    auto flags = *chosen.tls;
    flags.keylog.clear();  // opening the key log file is I/O, not parsing
    flags.password_file.clear();
    try {
      (void)cli::to_options(flags, chosen.server);
    } catch (const sslstream::config_error&) {
    }
  }
  return 0;
}
