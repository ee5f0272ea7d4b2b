// The sslstream command-line tool: shared pieces of its subcommands (options, exit statuses,
// error reporting). Uses only the library's public API.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <sslstream/sslstream.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace cli {

/// Exit statuses (DESIGN.md §2).
enum exit_status : int {
  ok = 0,
  other = 1,
  usage = 2,       // bad usage, unusable options or files
  no_connect = 3,  // could not connect or listen
  handshake = 4,   // TLS handshake failed, verification included
  broken = 5,      // the connection broke after the handshake
};

/// Where a command was when it failed: decides the exit status of a socket or TLS error.
enum class phase { setup, connect, handshake, transfer };

/// TLS options shared by listen, connect and info.
struct tls_flags {
  std::string cert, key, password, password_file, password_env, ca_file, ca_dir, min_version,
      max_version, ciphers, ciphersuites, alpn, keylog, verify, server_name;
  std::string ticket_keys, ocsp;  ///< listen: --ticket-keys, --ocsp
  std::vector<std::string> pins;  ///< --pin, repeatable: any one of them matching accepts
  bool insecure = false;
  bool allow_truncation = false;  ///< the relay accepts a close without close_notify after ours
  bool verbose = false;
  bool quiet = false;
  double idle_timeout = 0;
};

void add_tls_flags(CLI::App& app, tls_flags& f, bool server);
/// Builds ssl_options from the flags; throws sslstream::config_error for a bad value.
sslstream::ssl_options to_options(const tls_flags& f, bool server);
std::chrono::milliseconds seconds(double s);

// Checks of option values, with messages that say what is expected (CLI11's own print the
// limits of a double). Each runs on the text before it is converted.
/// Seconds: a number from 0 (no limit) to a year, fractions allowed.
CLI::Validator seconds_value();
/// A whole number from `min` to `max`.
CLI::Validator whole_number(long long min, long long max);

/// The non-empty pieces of `s` between `sep`s.
std::vector<std::string> split(const std::string& s, char sep);
/// `s` with control bytes shown as \xNN — C0, DEL, C1 as UTF-8 (C2 80..9F) and bare 80..9F
/// bytes (C1 to a Latin-1 terminal) — for text a peer chose (names, reasons): safe to print.
std::string printable(std::string_view s);

/// An error in the tool's words (flags, not library option names) and its exit status.
struct failure {
  int status;
  std::string message;
};
/// `cmd` decides the words: listen is the server, connect and info the client.
failure explain(const std::string& cmd, phase at, const std::exception& e);
/// Prints "sslstream CMD: message" on stderr and returns the exit status for the error.
int report(const std::string& cmd, phase at, const std::exception& e, const tls_flags* flags);
/// Runs `body`, turning any exception into one line on stderr and its exit status.
int guarded(const std::string& cmd, const phase& at, const tls_flags* flags,
            const std::function<int()>& body);

/// -v: the handshake's details on stderr.
void print_handshake(sslstream::ssl_stream& s, const std::string& who);

/// Relays stdin to the stream and the stream to stdout, each direction on its own until it
/// ends (TLS half close); returns once both are closed. stdout is closed as soon as the peer's
/// close_notify arrives. A peer that closes without close_notify is an error (truncated) even
/// after ours, unless f.allow_truncation.
void relay_stdio(sslstream::ssl_stream& s, const tls_flags& f);
/// --allow-truncation, for the commands that relay.
void add_allow_truncation(CLI::App& app, tls_flags& f);

/// Writes all of `data` to standard output; throws std::system_error naming it when it fails
/// (a full disk, a closed pipe).
void write_stdout(std::span<const std::byte> data);
/// Ends a connection so that the peer sees an error (a reset), never a clean close_notify:
/// for a connection whose bytes we could not deliver. The stream is left for its owner to
/// destroy.
void abort_connection(sslstream::ssl_stream& s) noexcept;

/// A process serving many connections needs more descriptors than the usual soft limit of
/// 1024: takes what the hard limit allows, as Go's runtime does for every program. Returns the
/// soft limit now in force.
std::size_t raise_descriptor_limit();

/// What the command line chose: set by the chosen subcommand's callback during parsing, run
/// after it, so that parsing alone (the fuzzer, tests) never touches the network or files.
struct command {
  std::function<int()> run;
  const tls_flags* tls = nullptr;  ///< its TLS flags, when it has them
  bool server = false;
};

// The subcommands.
void add_listen(CLI::App& app, command& chosen);
void add_connect(CLI::App& app, command& chosen);
void add_info(CLI::App& app, command& chosen);
void add_cert(CLI::App& app, command& chosen);
void add_demo(CLI::App& app, command& chosen);
void add_bench(CLI::App& app, command& chosen);

/// The whole command line: every subcommand, registered on `app`.
void add_all(CLI::App& app, command& chosen);
/// Parses the arguments: an exit status when there is nothing to run (help, version, a usage
/// error, reported on stdout/stderr), or nullopt when `chosen` is ready to run.
std::optional<int> parse(CLI::App& app, int argc, const char* const* argv);

}  // namespace cli
