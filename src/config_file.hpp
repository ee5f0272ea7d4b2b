// Internal: reading a whole file named by an ssl_options field, with a config_error that names
// the file and the option when it cannot be read.
#pragma once

#include <string>

namespace sslstream::detail {

/// The bytes of `path`; throws config_error (bad_file) naming `what` (e.g. "session ticket key")
/// and `option` (e.g. "ssl_options::ticket_key_file") when it is missing, a directory or
/// unreadable, followed by `hint` (what the file should hold and how to make one).
std::string read_config_file(const std::string& path, const char* what, const char* option,
                             const char* hint = "");

}  // namespace sslstream::detail
