// The command line as a whole: which subcommands exist, and parsing it into a command to run.
#include <iostream>

#include "cli.hpp"

namespace cli {

void add_all(CLI::App& app, command& chosen) {
  app.require_subcommand(1);
  app.set_version_flag("--version", "sslstream 0.1.0");
  add_listen(app, chosen);
  add_connect(app, chosen);
  add_info(app, chosen);
  add_cert(app, chosen);
  add_demo(app, chosen);
  add_bench(app, chosen);
}

std::optional<int> parse(CLI::App& app, int argc, const char* const* argv) {
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
