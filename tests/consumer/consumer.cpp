// A program outside the project: the umbrella header, one plain socket round trip, and an SSL
// context built from the sample certificate.
#include <iostream>
#include <sslstream/sslstream.hpp>

int main() {
  auto listener = sslstream::make_socket(sslstream::passive{.local_host = "127.0.0.1"});
  auto client = sslstream::make_socket(
      sslstream::active{.remote_host = "127.0.0.1", .remote_port = listener.local_port()});
  auto server = listener.accept_connection();
  client << "consumer " << std::flush;
  std::string word;
  server >> word;
  sslstream::ssl_options o;
  o.verify = sslstream::verify_mode::none;
  auto ctx = sslstream::make_ssl_client_context(o);
  std::cout << "consumer: " << word << (ctx.is_server() ? " server" : " client") << " context ok\n";
  return word == "consumer" ? 0 : 1;
}
