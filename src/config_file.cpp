// Reading an option's file whole, with errors that say which file, which option and why.
#include "config_file.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sslstream/error.hpp>
#include <sstream>

namespace sslstream::detail {

std::string read_config_file(const std::string& path, const char* what, const char* option,
                             const char* hint) {
  std::ifstream in(path, std::ios::binary);
  struct stat st {};
  if (!in || (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
    int err = in ? EISDIR : errno;
    throw config_error(errc::bad_file, "bad-file",
                       std::string("cannot open the ") + what + " file '" + path + "' (" + option +
                           "): " + std::strerror(err) + hint);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace sslstream::detail
