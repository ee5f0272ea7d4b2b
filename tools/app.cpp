// The command line as a whole: which subcommands exist, and parsing it into a command to run.
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

#include <algorithm>
#include <iostream>

#include "cli.hpp"

#ifndef SSLSTREAM_VERSION
#error "SSLSTREAM_VERSION (the CMake project version) must be defined by the build"
#endif

namespace cli {

namespace {

/// The subcommands' names, in the order --help lists them.
std::vector<std::string> subcommand_names(CLI::App& app) {
  std::vector<std::string> names;
  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  return names;
}

/// "listen, connect, ...".
std::string listed(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return list;
}

/// "sslstream: unknown subcommand foo" with the nearest name when the word starts one
/// (`sslstream lis`), else the list: CLI11 alone says "A subcommand is required" or "The
/// following argument was not expected", which do not name the mistake.
int unknown_subcommand(CLI::App& app, const std::string& word) {
  auto names = subcommand_names(app);
  std::string hint;
  int starting = 0;
  for (const auto& n : names)
    if (n.starts_with(word) && ++starting == 1) hint = n;
  if (starting != 1) hint.clear();
  std::cerr << "sslstream: unknown subcommand " << word;
  if (!hint.empty())
    std::cerr << " (did you mean " << hint << "?)";
  else
    std::cerr << " (the subcommands are " << listed(names) << ")";
  std::cerr << "; see sslstream --help\n";
  return usage;
}

std::string version_text() {
  // The OpenSSL the process runs with can differ from the headers it was built against (a
  // security update of libssl3 without a rebuild): both are shown when they differ.
  std::string text = "sslstream " SSLSTREAM_VERSION "\n";
  std::string running = OpenSSL_version(OPENSSL_VERSION);
  text += running;
  if (running != OPENSSL_VERSION_TEXT)
    text += std::string(" (built with ") + OPENSSL_VERSION_TEXT + ")";
  return text;
}

}  // namespace

void add_all(CLI::App& app, command& chosen) {
  app.require_subcommand(1);
  app.set_version_flag("-V,--version", version_text,
                       "print the version of sslstream and of the OpenSSL it runs with");
  add_listen(app, chosen);
  add_connect(app, chosen);
  add_info(app, chosen);
  add_cert(app, chosen);
  add_demo(app, chosen);
  add_bench(app, chosen);
}

std::optional<int> parse(CLI::App& app, int argc, const char* const* argv) {
  // The top level has only --help and --version: a first argument that is not an option must
  // be a subcommand.
  if (argc <= 1) {
    std::cerr << "sslstream: a subcommand is required: " << listed(subcommand_names(app))
              << "; see sslstream --help\n";
    return usage;
  }
  if (argv[1][0] != '-') {
    auto names = subcommand_names(app);
    if (std::find(names.begin(), names.end(), argv[1]) == names.end())
      return unknown_subcommand(app, argv[1]);
  }
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "sslstream: " << e.what() << " (see sslstream --help)\n";
    return usage;
  }
}

}  // namespace cli
