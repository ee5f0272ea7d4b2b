// Internal: reading a whole file named by an ssl_options field, with a config_error that names
// the file and the option when it cannot be read.
#pragma once

#include <string>

namespace sslstream::detail {

/// The bytes of `path`; throws config_error (bad_file) naming `what` (e.g. "OCSP response")
/// and `option` (e.g. "ssl_options::ocsp_response_file") when it is missing, a directory or
/// unreadable, followed by `hint` (what the file should hold and how to make one).
std::string read_config_file(const std::string& path, const char* what, const char* option,
                             const char* hint = "");

/// The same for a file of secrets (e.g. session ticket keys), refused as OpenSSH refuses a
/// private key: when `path` is a symbolic link, not a regular file, or readable or writable by
/// group or others (mode & 077). The checks are made on the opened descriptor, so the file
/// cannot be swapped between check and read.
std::string read_secret_file(const std::string& path, const char* what, const char* option,
                             const char* hint = "");

}  // namespace sslstream::detail
