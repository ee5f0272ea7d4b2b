// Host naming: Allegro's lookup-hostname, ipaddr-to-dotted, dotted-to-ipaddr, ipaddr-to-hostname.
#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <cstring>
#include <sslstream/socket.hpp>
#include <stdexcept>

#include "socket_impl.hpp"

namespace sslstream {

std::vector<std::string> lookup_hostname_all(const std::string& host) {
  auto list = detail::resolve(host, 0, 0);
  std::vector<std::string> v4, v6;
  for (auto* ai = list.get(); ai; ai = ai->ai_next) {
    detail::endpoint e;
    std::memcpy(&e.addr, ai->ai_addr, ai->ai_addrlen);
    auto& dst = ai->ai_family == AF_INET6 ? v6 : v4;
    auto h = e.host();
    if (std::find(dst.begin(), dst.end(), h) == dst.end()) dst.push_back(h);
  }
  v6.insert(v6.end(), v4.begin(), v4.end());
  return v6;
}

std::string lookup_hostname(const std::string& host) {
  auto all = lookup_hostname_all(host);
  auto v4 = std::find_if(all.begin(), all.end(),
                         [](const std::string& a) { return a.find(':') == std::string::npos; });
  return v4 != all.end() ? *v4 : all.front();
}

std::string ipaddr_to_dotted(std::uint32_t address) {
  return std::to_string(address >> 24) + '.' + std::to_string((address >> 16) & 0xff) + '.' +
         std::to_string((address >> 8) & 0xff) + '.' + std::to_string(address & 0xff);
}

std::uint32_t dotted_to_ipaddr(std::string_view dotted) {
  in_addr a{};
  std::string s(dotted);
  if (inet_pton(AF_INET, s.c_str(), &a) != 1)
    throw std::invalid_argument("sslstream: not a dotted IPv4 address: '" + s + "'");
  return ntohl(a.s_addr);
}

bool is_ip_address(std::string_view text) {
  std::string s(text);
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string ipaddr_to_hostname(const std::string& address) {
  detail::endpoint e;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&e.addr);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&e.addr);
  if (inet_pton(AF_INET, address.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    e.len = sizeof *a4;
  } else if (inet_pton(AF_INET6, address.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    e.len = sizeof *a6;
  } else {
    throw std::invalid_argument("sslstream: not an IP address: '" + address + "'");
  }
  char name[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&e.addr), e.len, name, sizeof name, nullptr, 0,
                  NI_NAMEREQD) != 0)
    return address;
  return name;
}

}  // namespace sslstream
