// --starttls for connect and info: the plaintext exchange of a protocol that upgrades its
// connection to TLS (SMTP, IMAP, POP3, FTP, XMPP, PostgreSQL, LDAP), spoken on the TCP
// connection before the TLS handshake starts on the same connection.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <sslstream/socket.hpp>
#include <string>

namespace cli {

/// --starttls PROTO on a subcommand, with its check (a bad name is a usage error).
void add_starttls_flag(CLI::App& app, std::string& protocol);

/// Speaks `protocol`'s exchange on `sock` up to the server's go-ahead, leaving the connection
/// where TLS starts. `domain` is the server's name (XMPP's to=). The whole exchange is bounded
/// by `limit` (0 = no time limit) and by a few KiB per line and 64 KiB in all.
/// Throws sslstream::tls_error "starttls-refused" when the server refuses or answers something
/// unexpected, or sends bytes after its go-ahead (they would be taken as TLS: the STARTTLS
/// command injection of CVE-2011-0411); sslstream::socket_error when it stalls past `limit`
/// or closes.
void starttls(sslstream::socket_stream& sock, const std::string& protocol,
              const std::string& domain, std::chrono::milliseconds limit);

}  // namespace cli
