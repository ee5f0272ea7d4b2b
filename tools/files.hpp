// Files the tool writes (certificates with their keys, the port file, key logs): created
// exclusively and never through a symlink planted at their path.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace cli {

/// Writes `data` to `path` whole or not at all: into a new file made by mkstemp in the same
/// directory (mode 0600), then moved into place. An existing `path` (a symlink included) is
/// refused (config_error naming --force) unless `replace`; then it is replaced, never followed.
/// `what` names the file in messages ("--out", "--port-file").
void write_file_atomically(const std::string& path, std::string_view data, bool replace,
                           const std::string& what);

/// Opens `path` for appending, creating it 0600; a symlink at `path` or anything but a regular
/// file is refused, and an existing file readable by others is made 0600. Returns the
/// descriptor, owned (closed when the last copy of the pointer goes).
std::shared_ptr<int> open_private_append(const std::string& path, const std::string& what);

/// The first line of `path` (a password file), without its line end; at most 4 KiB are read.
std::string read_first_line(const std::string& path, const std::string& what);

}  // namespace cli
