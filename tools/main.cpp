// sslstream: TLS from the command line — listen, connect, info, cert, demo, bench.
#include <csignal>

#include "cli.hpp"

int main(int argc, char** argv) {
  // The tool reports a closed stdout as an error, not a silent death.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{
      "sslstream: TLS streams on the command line (Allegro CL-style sockets on OpenSSL 3)"};
  cli::command chosen;
  cli::add_all(app, chosen);
  if (auto status = cli::parse(app, argc, argv)) return *status;
  return chosen.run ? chosen.run() : cli::usage;
}
