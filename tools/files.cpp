#include "files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sslstream/error.hpp>

namespace cli {

using sslstream::config_error;
using sslstream::errc;

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, const std::string& why) {
  throw config_error(errc::bad_file, "bad-file", what + ": cannot write '" + path + "': " + why);
}

std::string directory_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void write_file_atomically(const std::string& path, std::string_view data, bool replace,
                           const std::string& what) {
  struct stat st {};
  if (!replace && ::lstat(path.c_str(), &st) == 0)
    throw config_error(errc::bad_file, "bad-file",
                       what + ": '" + path + "' already exists: pass --force to replace it");
  std::string tmp = directory_of(path) + "/.sslstream-XXXXXX";
  int fd = ::mkstemp(tmp.data());  // O_EXCL, mode 0600: nothing else can be at this name
  if (fd < 0) fail(what, path, std::strerror(errno));
  auto give_up = [&](int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(what, path, std::strerror(err));
  };
  for (std::size_t done = 0; done < data.size();) {
    auto w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) give_up(errno);
    done += static_cast<std::size_t>(w);
  }
  if (::fsync(fd) != 0) give_up(errno);
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(what, path, std::strerror(err));
  }
  // rename() replaces whatever is at `path` (a symlink itself, not its target); link() never
  // replaces anything, so a file that appeared since the check above is not overwritten.
  int r = replace ? ::rename(tmp.c_str(), path.c_str()) : ::link(tmp.c_str(), path.c_str());
  int err = errno;
  if (!replace || r != 0) ::unlink(tmp.c_str());
  if (r != 0 && err == EEXIST)
    throw config_error(errc::bad_file, "bad-file",
                       what + ": '" + path + "' already exists: pass --force to replace it");
  if (r != 0) fail(what, path, std::strerror(err));
}

std::shared_ptr<int> open_private_append(const std::string& path, const std::string& what) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  auto refuse = [&](const std::string& why) {
    if (fd >= 0) ::close(fd);
    throw config_error(errc::bad_file, "bad-file", what + ": cannot open '" + path + "': " + why);
  };
  if (fd < 0)
    refuse(errno == ELOOP ? "it is a symlink (the file holds secrets: give a real path)"
                          : std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) refuse(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) refuse("not a regular file");
  if ((st.st_mode & 077) != 0 && ::fchmod(fd, 0600) != 0)
    refuse(std::string("others may read it and it cannot be made private: ") +
           std::strerror(errno));
  return std::shared_ptr<int>(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
}

std::string read_first_line(const std::string& path, const std::string& what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    throw config_error(errc::bad_file, "bad-file",
                       what + ": cannot read '" + path + "': " + std::strerror(errno));
  char buf[4096];
  auto n = ::read(fd, buf, sizeof buf);
  int err = errno;
  ::close(fd);
  if (n < 0)
    throw config_error(errc::bad_file, "bad-file",
                       what + ": cannot read '" + path + "': " + std::strerror(err));
  std::string line(buf, static_cast<std::size_t>(n));
  line = line.substr(0, line.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace cli
