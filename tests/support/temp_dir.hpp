// Test support: a directory of the test's own (made by mkdtemp, so never one planted by someone
// else, and unique across concurrently running test binaries), removed with everything in it at
// the end; and reading a whole file.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace testing_support {

struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& name = "test") {
    std::string t =
        (std::filesystem::temp_directory_path() / ("sslstream-" + name + "-XXXXXX")).string();
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp " + t + " failed");
    path = t;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string operator/(const std::string& file) const { return (path / file).string(); }
  /// Writes `text` to `file` in this directory; returns its path.
  std::string write(const std::string& file, const std::string& text) const {
    auto p = *this / file;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
    return p;
  }
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace testing_support
