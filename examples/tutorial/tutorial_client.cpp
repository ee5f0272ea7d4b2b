// Lisp Two of the Allegro SSL tutorial, in C++: the SSL client.
//
//   ./tutorial_client PORT [CA-FILE]
//
// Unlike Allegro, sslstream verifies the server by default. The sample certificate is
// self-signed, so the client trusts it explicitly by naming it as its CA file.
#include <iostream>
#include <sslstream/sslstream.hpp>
#include <string>

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::cerr << "usage: tutorial_client PORT [CA-FILE]\n";
    return 2;
  }
  auto port = static_cast<std::uint16_t>(std::stoul(argv[1]));

  // (setq act (socket:make-socket :remote-host "localhost" :remote-port 54505))
  // Options are plain structs: set the members you need (designated initialisers that skip
  // members warn under -Wextra's -Wmissing-field-initializers with GCC 12).
  sslstream::active where;
  where.remote_host = "localhost";
  where.remote_port = port;
  auto act = sslstream::make_socket(where);
  std::cout << act << std::endl;

  // (setq ssl-client (socket:make-ssl-client-stream act))
  sslstream::ssl_options o;
  o.ca_file = argc > 2 ? argv[2] : SSLSTREAM_SAMPLE_PEM;
  auto ssl_client = sslstream::make_ssl_client_stream(std::move(act), o);
  std::cout << ssl_client << std::endl;

  // (format ssl-client "secret message ") (force-output ssl-client): the handshake runs here.
  ssl_client << "secret message " << std::flush;
  std::cout << "wrote: secret message" << std::endl;

  // (read ssl-client)
  std::string reply;
  ssl_client >> reply;
  std::cout << "read: " << reply << std::endl;
  std::cout << ssl_client << std::endl;

  // (close ssl-client)
  ssl_client.close();
  return reply == "got-it" ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "tutorial_client: " << e.what() << '\n';
  return 1;
}
