// Reading an option's file whole, with errors that say which file, which option and why.
#include "config_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sslstream/error.hpp>
#include <sstream>

#include "fd.hpp"

namespace sslstream::detail {

namespace {

[[noreturn]] void refuse(const std::string& path, const char* what, const char* option,
                         const std::string& why, const char* hint,
                         const char* verb = "cannot open") {
  throw config_error(
      errc::bad_file, "bad-file",
      std::string(verb) + " the " + what + " file '" + path + "' (" + option + "): " + why + hint);
}

// The refusals of a file of secrets that opened fine: what is wrong and what to do.
[[noreturn]] void unsafe(const std::string& path, const char* what, const char* option,
                         const std::string& why, const char* hint) {
  refuse(path, what, option, why, hint, "will not read");
}

}  // namespace

std::string read_config_file(const std::string& path, const char* what, const char* option,
                             const char* hint) {
  std::ifstream in(path, std::ios::binary);
  struct stat st {};
  if (!in || (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
    int err = in ? EISDIR : errno;
    refuse(path, what, option, std::strerror(err), hint);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string read_secret_file(const std::string& path, const char* what, const char* option,
                             const char* hint) {
  // O_NOFOLLOW: whoever can replace a link makes the server use secrets of their choosing,
  // whatever the mode of the file it leads to. O_NONBLOCK: opening a FIFO would wait for a
  // writer (reads of a regular file do not change with it).
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
  if (raw < 0) {
    int err = errno;
    struct stat link {};
    if (err == ELOOP && ::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode))
      unsafe(path, what, option,
             "it is a symbolic link, which a file of secrets must not be (give the path of the "
             "file itself)",
             hint);
    refuse(path, what, option, std::strerror(err), hint);
  }
  unique_fd file(raw);
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) refuse(path, what, option, std::strerror(errno), hint);
  if (S_ISDIR(st.st_mode)) refuse(path, what, option, std::strerror(EISDIR), hint);
  if (!S_ISREG(st.st_mode))
    unsafe(path, what, option,
           "it is not a regular file (but a device, FIFO or socket), which a file of secrets "
           "must be",
           hint);
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    unsafe(path, what, option,
           std::string("its mode ") + mode +
               " lets group or others read or write it, and a file of secrets must be its "
               "owner's only (make it so: `chmod 600 '" +
               path + "'`)",
           hint);
  }
  // Owned by another user (not root), the file could have been put there by them, 0600 and
  // all: the server would use secrets of their choosing.
  // (Strings built by appending: GCC 12's -O3 warns, falsely, on a literal + a temporary.)
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    auto me = std::to_string(::geteuid());
    std::string why = "it belongs to user ";
    why += std::to_string(st.st_uid);
    why += ", neither this process's user (" + me + ") nor root, who alone may provide its ";
    why += "secrets (make it yours: `chown " + me + " '" + path + "'`)";
    unsafe(path, what, option, why, hint);
  }
  // Secret files are small (ticket keys: 80 bytes each): a huge one is a mistake, not a read.
  constexpr off_t largest = 1 << 20;
  if (st.st_size > largest) {
    std::string why = "it is ";
    why += std::to_string(st.st_size);
    why += " bytes long, more than a file of secrets can be (1 MiB)";
    unsafe(path, what, option, why, hint);
  }
  std::string bytes;
  bytes.reserve(static_cast<std::size_t>(st.st_size));  // no copies of secrets left by growth
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(file.get(), buf, sizeof buf);
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      explicit_bzero(bytes.data(), bytes.size());
      refuse(path, what, option, std::strerror(err), hint);
    }
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  explicit_bzero(buf, sizeof buf);
  return bytes;
}

}  // namespace sslstream::detail
