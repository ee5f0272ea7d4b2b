// sslstream: TLS from the command line — listen, connect, info, cert, demo.
#include <csignal>
#include <iostream>

#include "cli.hpp"

int main(int argc, char** argv) {
  std::signal(SIGPIPE,
              SIG_IGN);  // the tool reports a closed stdout as an error, not a silent death
  CLI::App app{
      "sslstream: TLS streams on the command line (Allegro CL-style sockets on OpenSSL 3)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sslstream 0.1.0");
  int status = cli::ok;
  cli::add_listen(app, status);
  cli::add_connect(app, status);
  cli::add_info(app, status);
  cli::add_cert(app, status);
  cli::add_demo(app, status);
  cli::add_bench(app, status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "sslstream: " << e.what() << " (see sslstream --help)\n";
    return cli::usage;
  }
  return status;
}
