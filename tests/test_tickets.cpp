// Session tickets for fleets (ssl_options::ticket_key_file, ticket_lifetime) and OCSP stapling
// (ssl_options::ocsp_response_file), in the library and through `sslstream listen`: servers
// that share a key file resume each other's sessions, a key taken out of the file stops
// resuming, keys without a file rotate by themselves, and a staple reaches the clients that
// ask for one (openssl s_client -status) and no other.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <sslstream/sslstream.hpp>
#include <thread>

#include "cli_run.hpp"
#include "loopback.hpp"
#include "process.hpp"
#include "temp_dir.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

void write(const std::string& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
}

/// `n` random 80-byte ticket keys, as `openssl rand 80` makes each.
std::string random_keys(int n) {
  std::string k(80 * static_cast<std::size_t>(n), '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(k.data()), static_cast<int>(k.size()));
  return k;
}

std::string key_name(const std::string& key) { return key.substr(0, 16); }

struct connection {
  std::string session;  ///< ssl_stream::session() after the server's ticket arrived
  bool reused = false;
};

/// One connection from a new client context (offering `offered`, if any) to `port`, through
/// an echo: the reply brings the TLS 1.3 ticket.
connection connect_to(std::uint16_t port, tls_version max, const std::string& offered = "") {
  auto co = client_options();
  co.max_version = max;
  co.session = offered;
  auto tls = make_ssl_client_stream(
      make_socket(active{.remote_host = "localhost", .remote_port = port}), co);
  tls.set_timeout(20s);
  tls << "ping" << std::endl;
  std::string line;
  std::getline(tls, line);
  if (line != "ping") throw std::runtime_error("no echo from port " + std::to_string(port));
  connection c{tls.session(), tls.session_reused()};
  tls.close();
  return c;
}

/// The same through a server context of this process: it echoes one line, then closes.
connection connect_to(const ssl_context& server, tls_version max, const std::string& offered = "") {
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  auto srv = std::async(std::launch::async, [&] {
    auto tls = make_ssl_server_stream(accept_within(listener, "the test client"), server);
    tls.set_timeout(20s);
    std::string line;
    std::getline(tls, line);
    tls << line << std::endl;
    tls.close();
  });
  auto c = connect_to(listener.local_port(), max, offered);
  srv.get();
  return c;
}

using session_ptr = std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)>;

session_ptr parse(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new_mem_buf(pem.data(), -1), BIO_free);
  return {PEM_read_bio_SSL_SESSION(b.get(), nullptr, nullptr, nullptr), SSL_SESSION_free};
}

/// The name of the key that encrypted a saved session's ticket (its first 16 bytes).
std::string ticket_key_name(const std::string& pem) {
  auto s = parse(pem);
  const unsigned char* t = nullptr;
  std::size_t len = 0;
  if (s) SSL_SESSION_get0_ticket(s.get(), &t, &len);
  return len >= 16 ? std::string(reinterpret_cast<const char*>(t), 16) : std::string();
}

ssl_options server_with_keys(const std::string& key_file) {
  auto o = tls_server_options();
  o.ticket_key_file = key_file;
  return o;
}

const tls_version both[] = {tls_version::tls1_3, tls_version::tls1_2};

std::string name(tls_version v) { return v == tls_version::tls1_3 ? "TLS 1.3" : "TLS 1.2"; }

}  // namespace

// Two contexts built from one file are what two servers of a fleet have: each resumes the
// sessions the other made.
TEST(TicketKeys, TwoContextsFromOneFileResumeEachOthersSessions) {
  temp_dir dir("tickets-lib");
  write(dir / "ticket.key", random_keys(2));
  for (auto v : both) {
    SCOPED_TRACE(name(v));
    auto a = make_ssl_server_context(server_with_keys(dir / "ticket.key"));
    auto b = make_ssl_server_context(server_with_keys(dir / "ticket.key"));
    auto first = connect_to(a, v);
    EXPECT_FALSE(first.reused);
    auto second = connect_to(b, v, first.session);
    EXPECT_TRUE(second.reused);
    EXPECT_TRUE(connect_to(a, v, second.session).reused);
  }
}

// Without a file each context has its own random key: another context cannot resume.
TEST(TicketKeys, WithoutAFileEachContextHasItsOwnKey) {
  for (auto v : both) {
    SCOPED_TRACE(name(v));
    auto a = make_ssl_server_context(tls_server_options());
    auto b = make_ssl_server_context(tls_server_options());
    auto first = connect_to(a, v);
    EXPECT_TRUE(connect_to(a, v, first.session).reused);
    EXPECT_FALSE(connect_to(b, v, first.session).reused);  // a full handshake, no error
  }
}

// Rotation with a file: a new key in front encrypts, the old one behind it still decrypts (and
// its tickets are replaced by the new key's); once the old key leaves the file, its tickets
// get a full handshake.
TEST(TicketKeys, TheFirstKeyEncryptsEveryKeyDecryptsARemovedKeyStopsResuming) {
  temp_dir dir("tickets-rotate");
  std::string old_key = random_keys(1), new_key = random_keys(1);
  for (auto v : both) {
    SCOPED_TRACE(name(v));
    write(dir / "ticket.key", old_key);
    auto made = connect_to(make_ssl_server_context(server_with_keys(dir / "ticket.key")), v);
    EXPECT_EQ(ticket_key_name(made.session), key_name(old_key));

    write(dir / "ticket.key", new_key + old_key);
    auto resumed =
        connect_to(make_ssl_server_context(server_with_keys(dir / "ticket.key")), v, made.session);
    EXPECT_TRUE(resumed.reused);
    EXPECT_EQ(ticket_key_name(resumed.session), key_name(new_key));

    write(dir / "ticket.key", new_key);
    auto ctx = make_ssl_server_context(server_with_keys(dir / "ticket.key"));
    auto full = connect_to(ctx, v, made.session);
    EXPECT_FALSE(full.reused);
    EXPECT_TRUE(connect_to(ctx, v, resumed.session).reused);
  }
}

// Each ticket tells the client how long it may be used: ssl_options::ticket_lifetime, which is
// also the server's session timeout.
TEST(TicketKeys, TheLifetimeHintIsTicketLifetime) {
  for (auto lifetime : {7200s, 300s}) {
    auto so = tls_server_options();
    if (lifetime != 7200s) so.ticket_lifetime = lifetime;  // 7200 s: the default
    auto ctx = make_ssl_server_context(so);
    EXPECT_EQ(SSL_CTX_get_timeout(static_cast<SSL_CTX*>(ctx.native_handle())), lifetime.count());
    for (auto v : both) {
      auto s = parse(connect_to(ctx, v).session);
      ASSERT_TRUE(s);
      EXPECT_EQ(SSL_SESSION_get_ticket_lifetime_hint(s.get()),
                static_cast<unsigned long>(lifetime.count()))
          << name(v);
    }
  }
}

// Without a file, the key is replaced every ticket_lifetime and the one before still
// decrypts: a ticket of the previous period resumes (and is renewed with the current key), one
// from two periods ago does not. The session timeout is raised past the test, through the
// native handle, so that only the keys decide.
TEST(TicketKeys, WithoutAFileKeysRotateEveryLifetime) {
  const auto lifetime = 3s;
  const auto margin = std::chrono::milliseconds(lifetime) / 4;  // each step takes far less
  for (auto v : both) {
    SCOPED_TRACE(name(v));
    auto so = tls_server_options();
    so.ticket_lifetime = lifetime;
    auto built = std::chrono::steady_clock::now();  // the keys' periods start after this
    auto ctx = make_ssl_server_context(so);
    SSL_CTX_set_timeout(static_cast<SSL_CTX*>(ctx.native_handle()), 3600);
    auto period_0 = connect_to(ctx, v);
    ASSERT_LT(std::chrono::steady_clock::now(), built + lifetime) << "the test ran late";
    std::this_thread::sleep_until(built + lifetime + margin);
    auto period_1 = connect_to(ctx, v, period_0.session);
    ASSERT_LT(std::chrono::steady_clock::now(), built + 2 * lifetime) << "the test ran late";
    EXPECT_TRUE(period_1.reused);  // the previous key still decrypts
    EXPECT_NE(ticket_key_name(period_1.session), ticket_key_name(period_0.session));
    std::this_thread::sleep_until(built + 2 * lifetime + margin);
    ASSERT_LT(std::chrono::steady_clock::now(), built + 3 * lifetime) << "the test ran late";
    EXPECT_FALSE(connect_to(ctx, v, period_0.session).reused);  // two keys ago
    EXPECT_TRUE(connect_to(ctx, v, period_1.session).reused);
  }
}

TEST(TicketKeys, BadKeyFilesAndLifetimesAreConfigErrors) {
  temp_dir dir("tickets-bad");
  auto fails = [](const ssl_options& o, errc code, const std::string& says) {
    auto e = expect_throw<config_error>([&] { make_ssl_server_context(o); });
    EXPECT_EQ(e.code(), make_error_code(code)) << e.what();
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    return std::string(e.what());
  };
  auto missing = fails(server_with_keys(dir / "none.key"), errc::bad_file, "none.key");
  EXPECT_NE(missing.find("No such file"), std::string::npos) << missing;
  EXPECT_NE(missing.find("openssl rand 80 > ticket.key"), std::string::npos) << missing;
  fails(server_with_keys(dir.path.string()), errc::bad_file, "Is a directory");
  write(dir / "empty.key", "");
  fails(server_with_keys(dir / "empty.key"), errc::bad_file, "has 0 bytes: no key");
  for (std::size_t size : {79, 81, 48}) {
    write(dir / "odd.key", random_keys(2).substr(0, size));
    auto m = fails(server_with_keys(dir / "odd.key"), errc::bad_file,
                   "has " + std::to_string(size) + " bytes: not a multiple of 80");
    EXPECT_NE(m.find("openssl rand 80 > ticket.key"), std::string::npos) << m;
  }
  for (auto lifetime : {0s, std::chrono::seconds(-5), std::chrono::seconds(8 * 86400)}) {
    auto o = tls_server_options();
    o.ticket_lifetime = lifetime;
    fails(o, errc::bad_option, "ticket_lifetime must lie between 1 s and 7 days");
  }
}

// A ticket key file is a secret, refused as OpenSSH refuses a private key: anyone who can read
// it decrypts recorded TLS 1.2 sessions and forges resumptions, and anyone who can write it or
// replace a link chooses the keys. The checks are on the opened file, not its path.
TEST(TicketKeys, KeyFilesOthersCouldReadOrReplaceAreRefused) {
  temp_dir dir("tickets-unsafe");
  auto fails = [](const std::string& file, const std::string& says) {
    auto e = expect_throw<config_error>([&] { make_ssl_server_context(server_with_keys(file)); });
    EXPECT_EQ(e.code(), make_error_code(errc::bad_file)) << e.what();
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ssl_options::ticket_key_file"), std::string::npos)
        << e.what();
    return std::string(e.what());
  };
  std::string key = dir / "ticket.key";
  write(key, random_keys(1));  // 0600
  EXPECT_NO_THROW(make_ssl_server_context(server_with_keys(key)));
  for (auto mode : {0640, 0620, 0604, 0602, 0660, 0644, 0700 | 0004}) {
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", mode);
    SCOPED_TRACE(octal);
    fs::permissions(key, static_cast<fs::perms>(mode));
    auto m = fails(key, std::string("its mode ") + octal + " lets group or others read or write");
    EXPECT_NE(m.find("chmod 600 '" + key + "'"), std::string::npos) << m;
  }
  fs::permissions(key, fs::perms::owner_read);  // 0400: still its owner's only
  EXPECT_NO_THROW(make_ssl_server_context(server_with_keys(key)));
  fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);

  fs::create_symlink(key, dir / "link.key");  // to a file that is fine itself
  fails(dir / "link.key", "it is a symbolic link");
  fails("/dev/null", "it is not a regular file");
  // A FIFO: without O_NONBLOCK the open would wait for a writer. If it does, a writer that
  // closes at once ends the wait, so that the test fails rather than hangs.
  std::string fifo = dir / "fifo.key";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto attempt = std::async(std::launch::async, [&] {
    try {
      make_ssl_server_context(server_with_keys(fifo));
    } catch (const config_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  });
  if (attempt.wait_for(20s) != std::future_status::ready) {
    ADD_FAILURE() << "opening a FIFO as the ticket key file waited for a writer";
    for (int i = 0; i < 100 && attempt.wait_for(100ms) != std::future_status::ready; ++i) {
      int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // ENXIO until the reader waits
      if (w >= 0) ::close(w);
    }
  }
  auto m = attempt.get();
  EXPECT_NE(m.find("it is not a regular file"), std::string::npos) << m;
}

TEST(TicketKeys, AKeyFileOfAnotherUserIsRefusedAndAHugeOneToo) {
  // Whoever can write the directory could put their own 0600 file there: its owner must be
  // this process's user or root.
  temp_dir dir("tickets-owner");
  std::string key = dir / "ticket.key";
  write(key, random_keys(1));  // 0600
  auto says = [&](const std::string& text) {
    auto e = expect_throw<config_error>([&] { make_ssl_server_context(server_with_keys(key)); });
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  };
  if (::geteuid() == 0) {  // only root can give a file away
    ASSERT_EQ(::chown(key.c_str(), 65534, 65534), 0);
    says("it belongs to user 65534, neither this process's user (0) nor root");
    ASSERT_EQ(::chown(key.c_str(), 0, 0), 0);
  }
  EXPECT_NO_THROW(make_ssl_server_context(server_with_keys(key)));
  ASSERT_EQ(::truncate(key.c_str(), (1 << 20) + 80), 0);  // sparse: no disk used
  says("bytes long, more than a file of secrets can be (1 MiB)");
  if (::geteuid() != 0) GTEST_SKIP() << "the owner check needs root to make a file of another";
}

// ---- OCSP stapling ---------------------------------------------------------------------

namespace {

template <class T, auto Free>
using owned = std::unique_ptr<T, std::integral_constant<decltype(Free), Free>>;

owned<X509, X509_free> load_certificate(const std::string& name) {
  owned<BIO, BIO_free> b(BIO_new_file(cert(name + ".pem").c_str(), "r"));
  return owned<X509, X509_free>(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
}

/// The test CA's database as `openssl ca` keeps it (the build does not keep its own): the
/// leaves it signed that the OCSP tests ask about, revoked.pem revoked.
std::string ca_index(const temp_dir& dir) {
  std::string index;
  for (const char* leaf : {"server-rsa", "client-rsa", "revoked"}) {
    auto x = load_certificate(leaf);
    owned<BIGNUM, BN_free> serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(x.get()), nullptr));
    char* hex = BN_bn2hex(serial.get());
    bool revoked = std::string(leaf) == "revoked";
    index += std::string(revoked ? "R" : "V") + "\t491231235959Z\t" +
             (revoked ? "230101000000Z" : "") + "\t" + hex + "\tunknown\t/CN=" + leaf + "\n";
    OPENSSL_free(hex);
  }
  write(dir / "index.txt", index);
  return dir / "index.txt";
}

/// A real OCSP response from the test CA, as its responder would send it.
std::string make_ocsp_response(const temp_dir& dir, const std::string& leaf) {
  std::string out = dir / (leaf + ".ocsp.der");
  auto r = run({"openssl", "ocsp", "-index", ca_index(dir), "-rsigner", cert("ca.pem"), "-rkey",
                cert("ca.key"), "-CA", cert("ca.pem"), "-issuer", cert("ca.pem"), "-cert",
                cert(leaf + ".pem"), "-respout", out, "-ndays", "1"});
  if (r.status != 0) throw std::runtime_error("openssl ocsp failed: " + r.output);
  return out;
}

owned<EVP_PKEY, EVP_PKEY_free> load_key(const std::string& name) {
  owned<BIO, BIO_free> b(BIO_new_file(cert(name).c_str(), "r"));
  return owned<EVP_PKEY, EVP_PKEY_free>(
      PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
}

/// Writes `resp` to `dir`/`name` (DER) and returns the file's path.
std::string save(const temp_dir& dir, const std::string& name, OCSP_RESPONSE* resp) {
  unsigned char* der = nullptr;
  int len = i2d_OCSP_RESPONSE(resp, &der);
  std::string out = dir / name;
  write(out, std::string(reinterpret_cast<char*>(der), static_cast<std::size_t>(len)));
  OPENSSL_free(der);
  return out;
}

/// A response the openssl command cannot make: signed by the CA, "good" for the CertID `id`
/// (server-rsa's, made by the test CA, when null), from three days ago until `next_update`.
std::string craft_good_response(const temp_dir& dir, const std::string& name,
                                std::time_t next_update, OCSP_CERTID* id = nullptr) {
  auto ca = load_certificate("ca");
  auto ca_key = load_key("ca.key");
  auto leaf = load_certificate("server-rsa");
  owned<OCSP_CERTID, OCSP_CERTID_free> own(id ? id
                                              : OCSP_cert_to_id(nullptr, leaf.get(), ca.get()));
  owned<OCSP_BASICRESP, OCSP_BASICRESP_free> basic(OCSP_BASICRESP_new());
  owned<ASN1_TIME, ASN1_TIME_free> this_update(X509_gmtime_adj(nullptr, -3 * 86400));
  owned<ASN1_GENERALIZEDTIME, ASN1_GENERALIZEDTIME_free> next(
      ASN1_GENERALIZEDTIME_set(nullptr, next_update));
  OCSP_basic_add1_status(basic.get(), own.get(), V_OCSP_CERTSTATUS_GOOD, 0, nullptr,
                         this_update.get(), next.get());  // copies the CertID
  OCSP_basic_sign(basic.get(), ca.get(), ca_key.get(), EVP_sha256(), nullptr, 0);
  owned<OCSP_RESPONSE, OCSP_RESPONSE_free> resp(
      OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
  return save(dir, name, resp.get());
}

/// A "good" response whose nextUpdate was a day ago; or, with `status`, an unsuccessful one
/// (tryLater, ...).
std::string craft_ocsp_response(const temp_dir& dir, int status = OCSP_RESPONSE_STATUS_SUCCESSFUL) {
  if (status == OCSP_RESPONSE_STATUS_SUCCESSFUL)
    return craft_good_response(dir, "crafted-stale.der", std::time(nullptr) - 86400);
  owned<OCSP_RESPONSE, OCSP_RESPONSE_free> resp(OCSP_response_create(status, nullptr));
  return save(dir, "crafted-" + std::to_string(status) + ".der", resp.get());
}

/// What `openssl s_client` (with `flags`) prints about one connection to `server`.
std::string s_client_to(const ssl_context& server, std::vector<std::string> flags) {
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  std::vector<std::string> argv{
      "openssl",     "s_client",  "-connect", "127.0.0.1:" + std::to_string(listener.local_port()),
      "-servername", "localhost", "-CAfile",  cert("ca.pem")};
  argv.insert(argv.end(), flags.begin(), flags.end());
  process cli(argv);
  cli.close_stdin();  // s_client closes once the handshake is done
  auto tls = make_ssl_server_stream(accept_within(listener, "openssl s_client"), server);
  tls.set_timeout(20s);
  tls.do_handshake();
  std::array<std::byte, 64> buf;
  try {
    while (tls.read_some(buf) > 0) {
    }
  } catch (const sslstream::error&) {  // s_client may close without close_notify
  }
  EXPECT_EQ(cli.wait(20s), 0) << cli.output();
  cli.drain(5s);
  return cli.output();
}

ssl_options server_with_ocsp(const std::string& response, const std::string& leaf = "server-rsa") {
  ssl_options o;
  o.certificate = cert(leaf + ".pem");
  o.key = cert(leaf + ".key");
  o.ocsp_response_file = response;
  return o;
}

}  // namespace

TEST(Ocsp, StapledWhenTheClientAsks) {
  temp_dir dir("ocsp");
  auto ctx = make_ssl_server_context(server_with_ocsp(make_ocsp_response(dir, "server-rsa")));
  for (const char* v : {"-tls1_3", "-tls1_2"}) {
    SCOPED_TRACE(v);
    auto out = s_client_to(ctx, {v, "-status"});
    EXPECT_NE(out.find("OCSP Response Status: successful"), std::string::npos) << out;
    EXPECT_NE(out.find("Cert Status: good"), std::string::npos) << out;
    EXPECT_EQ(out.find("no response sent"), std::string::npos) << out;
  }
}

// A client that does not ask gets no staple: in TLS 1.2 the server's status_request extension
// (which announces one) is absent; -tlsextdebug lists the extensions the server sent.
TEST(Ocsp, NoStapleWhenTheClientDoesNotAsk) {
  temp_dir dir("ocsp-none");
  auto ctx = make_ssl_server_context(server_with_ocsp(make_ocsp_response(dir, "server-rsa")));
  auto asked = s_client_to(ctx, {"-tls1_2", "-status", "-tlsextdebug"});
  EXPECT_NE(asked.find("TLS server extension \"status request\""), std::string::npos) << asked;
  auto not_asked = s_client_to(ctx, {"-tls1_2", "-tlsextdebug"});
  EXPECT_NE(not_asked.find("TLS server extension"), std::string::npos) << not_asked;
  EXPECT_EQ(not_asked.find("status request"), std::string::npos) << not_asked;
  EXPECT_EQ(not_asked.find("OCSP"), std::string::npos) << not_asked;
  // Without a response file, a client that asks is told nothing either.
  auto plain = s_client_to(make_ssl_server_context(tls_server_options()), {"-tls1_3", "-status"});
  EXPECT_NE(plain.find("OCSP response: no response sent"), std::string::npos) << plain;
}

// A reload is a new context: it reads the file again, and staples what is there now.
TEST(Ocsp, ANewContextReadsTheFileAgain) {
  temp_dir dir("ocsp-reload");
  std::string file = dir / "staple.der";
  fs::copy_file(make_ocsp_response(dir, "server-rsa"), file);
  auto old_ctx = make_ssl_server_context(server_with_ocsp(file));
  write(file, "garbage");
  EXPECT_THROW(make_ssl_server_context(server_with_ocsp(file)), config_error);
  fs::remove(file);
  fs::copy_file(make_ocsp_response(dir, "server-rsa"), file);
  auto out = s_client_to(make_ssl_server_context(server_with_ocsp(file)), {"-status"});
  EXPECT_NE(out.find("Cert Status: good"), std::string::npos) << out;
  // The old context keeps the response it read.
  out = s_client_to(old_ctx, {"-status"});
  EXPECT_NE(out.find("Cert Status: good"), std::string::npos) << out;
}

TEST(Ocsp, GnutlsCliChecksTheStaple) {
  temp_dir dir("ocsp-gnutls");
  auto ctx = make_ssl_server_context(server_with_ocsp(make_ocsp_response(dir, "server-rsa")));
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  process cli({"gnutls-cli", "--port", std::to_string(listener.local_port()), "--x509cafile",
               cert("ca.pem"), "--ocsp", "--verbose", "localhost"});
  cli.close_stdin();
  auto tls = make_ssl_server_stream(accept_within(listener, "gnutls-cli"), ctx);
  tls.set_timeout(20s);
  tls.do_handshake();
  std::array<std::byte, 64> buf;
  try {
    while (tls.read_some(buf) > 0) {
    }
  } catch (const sslstream::error&) {
  }
  cli.wait(20s);
  cli.drain(5s);
  auto out = cli.output();
  EXPECT_NE(out.find("Certificate Status: good"), std::string::npos) << out;
  EXPECT_NE(out.find("Handshake was completed"), std::string::npos) << out;
}

TEST(Ocsp, BadResponseFilesAreConfigErrors) {
  temp_dir dir("ocsp-bad");
  auto fails = [](const ssl_options& o, const std::string& says) {
    auto e = expect_throw<config_error>([&] { make_ssl_server_context(o); });
    EXPECT_EQ(e.code(), make_error_code(errc::bad_file)) << e.what();
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("openssl ocsp"), std::string::npos) << e.what();
  };
  fails(server_with_ocsp(dir / "none.der"), "No such file");
  fails(server_with_ocsp(cert("server-rsa.pem")), "is not a DER OCSP response");
  write(dir / "empty.der", "");
  fails(server_with_ocsp(dir / "empty.der"), "is not a DER OCSP response");
  std::string good = make_ocsp_response(dir, "server-rsa");
  {
    std::ifstream in(good, std::ios::binary);
    std::string der((std::istreambuf_iterator<char>(in)), {});
    write(dir / "trailing.der", der + "x");
    fails(server_with_ocsp(dir / "trailing.der"), "is not a DER OCSP response");
  }
  fails(server_with_ocsp(make_ocsp_response(dir, "client-rsa")),
        "is not about the server's certificate");
  fails(server_with_ocsp(make_ocsp_response(dir, "revoked"), "revoked"),
        "says the server's certificate is revoked");
  fails(server_with_ocsp(craft_ocsp_response(dir, OCSP_RESPONSE_STATUS_TRYLATER)),
        "the responder said 'trylater'");
  fails(server_with_ocsp(craft_ocsp_response(dir)), "is out of date");
}

// A serial number is unique per issuer only: a response is about the server's certificate when
// its whole CertID is (RFC 6960 §4.1.1): the hashes of the issuer's name and, when the issuer
// is in the chain (or trusted), of its key.
TEST(Ocsp, AResponseForTheSameSerialFromAnotherIssuerIsRefused) {
  temp_dir dir("ocsp-certid");
  auto ca = load_certificate("ca");
  auto other = load_certificate("other-ca");
  auto leaf = load_certificate("server-rsa");
  const std::time_t tomorrow = std::time(nullptr) + 86400;
  auto with_chain = [](ssl_options o) {
    o.other_certificates = {cert("ca.pem")};
    return o;
  };
  auto refused = [](const ssl_options& o) {
    auto e = expect_throw<config_error>([&] { make_ssl_server_context(o); });
    EXPECT_EQ(e.code(), make_error_code(errc::bad_file)) << e.what();
    EXPECT_NE(std::string(e.what()).find("is not about the server's certificate"),
              std::string::npos)
        << e.what();
  };
  // Another CA's certificate with the same serial number: name and key differ.
  std::string other_issuer = craft_good_response(
      dir, "other-issuer.der", tomorrow,
      OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(other.get()),
                       X509_get0_pubkey_bitstr(other.get()), X509_get0_serialNumber(leaf.get())));
  refused(server_with_ocsp(other_issuer));
  refused(with_chain(server_with_ocsp(other_issuer)));
  // A CA of the same name with another key: only the issuer's certificate tells them apart.
  std::string other_key = craft_good_response(
      dir, "other-key.der", tomorrow,
      OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(ca.get()),
                       X509_get0_pubkey_bitstr(other.get()), X509_get0_serialNumber(leaf.get())));
  refused(with_chain(server_with_ocsp(other_key)));
  auto trusting_ca = server_with_ocsp(other_key);
  trusting_ca.ca_file = cert("ca.pem");
  refused(trusting_ca);
  // The real CertID, as the responder makes it (SHA-1) or with SHA-256, is accepted either way.
  EXPECT_NO_THROW(
      make_ssl_server_context(with_chain(server_with_ocsp(make_ocsp_response(dir, "server-rsa")))));
  std::string sha256 = craft_good_response(dir, "sha256.der", tomorrow,
                                           OCSP_cert_to_id(EVP_sha256(), leaf.get(), ca.get()));
  EXPECT_NO_THROW(make_ssl_server_context(with_chain(server_with_ocsp(sha256))));
  EXPECT_NO_THROW(make_ssl_server_context(server_with_ocsp(sha256)));
}

// A context lives until it is reloaded, which may be after the response's nextUpdate: from
// then on the response is stale, and a client that asks gets no staple rather than that one.
TEST(Ocsp, NotStapledOnceItsNextUpdateHasPassed) {
  temp_dir dir("ocsp-expiry");
  const std::time_t next_update = std::time(nullptr) + 5;
  auto ctx =
      make_ssl_server_context(server_with_ocsp(craft_good_response(dir, "short.der", next_update)));
  auto before = s_client_to(ctx, {"-tls1_3", "-status"});
  // Stapled while current; the context was made in time, but this handshake may not be.
  if (std::time(nullptr) < next_update) {
    EXPECT_NE(before.find("Cert Status: good"), std::string::npos) << before;
  }
  std::this_thread::sleep_until(std::chrono::system_clock::from_time_t(next_update) + 1s);
  ASSERT_GE(std::time(nullptr), next_update);
  for (const char* v : {"-tls1_3", "-tls1_2"}) {
    SCOPED_TRACE(v);
    auto after = s_client_to(ctx, {v, "-status"});
    EXPECT_NE(after.find("OCSP response: no response sent"), std::string::npos) << after;
    EXPECT_EQ(after.find("Cert Status"), std::string::npos) << after;
  }
  // A new context refuses it, as it refuses any response past its nextUpdate.
  auto e = expect_throw<config_error>(
      [&] { make_ssl_server_context(server_with_ocsp(dir / "short.der")); });
  EXPECT_NE(std::string(e.what()).find("is out of date"), std::string::npos) << e.what();
}

// ---- The command line: sslstream listen --ticket-keys / --ocsp ---------------------------

namespace {

std::vector<std::string> listen_args(const std::vector<std::string>& extra) {
  auto argv = cmd({"listen", "--keep-open", "--echo", "--host", "127.0.0.1", "--cert",
                   cert("server-rsa.pem"), "--key", cert("server-rsa.key")});
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

}  // namespace

// Two server processes sharing one key file: a session made with one resumes with the other,
// and a process whose file no longer has the key gives a full handshake.
TEST(CliTickets, TwoProcessesSharingAKeyFileResumeEachOthersSessions) {
  temp_dir dir("cli-tickets");
  std::string old_key = random_keys(1), new_key = random_keys(1);
  write(dir / "fleet.key", old_key);
  write(dir / "rotated.key", new_key + old_key);
  write(dir / "later.key", new_key);
  process one(listen_args({"--ticket-keys", dir / "fleet.key"}));
  process two(listen_args({"--ticket-keys", dir / "fleet.key"}));
  process rotated(listen_args({"--ticket-keys", dir / "rotated.key"}));
  process later(listen_args({"--ticket-keys", dir / "later.key"}));
  auto p1 = listening(one), p2 = listening(two), p3 = listening(rotated), p4 = listening(later);
  for (auto v : both) {
    SCOPED_TRACE(name(v));
    auto first = connect_to(p1, v);
    EXPECT_FALSE(first.reused);
    auto second = connect_to(p2, v, first.session);
    EXPECT_TRUE(second.reused);
    EXPECT_TRUE(connect_to(p1, v, second.session).reused);
    EXPECT_TRUE(connect_to(p3, v, first.session).reused);
    EXPECT_FALSE(connect_to(p4, v, first.session).reused);
  }
}

TEST(CliTickets, OcspStapleFromListen) {
  temp_dir dir("cli-ocsp");
  process server(listen_args({"--ocsp", make_ocsp_response(dir, "server-rsa")}));
  auto port = listening(server);
  process cli({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
               "-servername", "localhost", "-CAfile", cert("ca.pem"), "-status"});
  cli.close_stdin();
  EXPECT_EQ(cli.wait(20s), 0) << cli.output();
  cli.drain(5s);
  EXPECT_NE(cli.output().find("OCSP Response Status: successful"), std::string::npos)
      << cli.output();
  EXPECT_NE(cli.output().find("Cert Status: good"), std::string::npos) << cli.output();
}

TEST(CliTickets, BadTicketKeyAndOcspFilesSayWhatIsWrong) {
  temp_dir dir("cli-tickets-bad");
  auto r = run(listen_args({"--ticket-keys", dir / "none.key"}), "", 30s);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(says(r, "sslstream listen: cannot open the session ticket key file")) << r.output;
  EXPECT_TRUE(says(r, "(--ticket-keys)")) << r.output;
  EXPECT_TRUE(says(r, "openssl rand 80 > ticket.key")) << r.output;

  write(dir / "short.key", random_keys(1).substr(0, 48));
  r = run(listen_args({"--ticket-keys", dir / "short.key"}), "", 30s);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(says(r, "has 48 bytes: not a multiple of 80")) << r.output;

  // A key file others can read is refused, saying how to make it private.
  write(dir / "shared.key", random_keys(1));
  fs::permissions(dir / "shared.key", fs::perms::group_read, fs::perm_options::add);
  r = run(listen_args({"--ticket-keys", dir / "shared.key"}), "", 30s);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(says(r, "(--ticket-keys)")) << r.output;
  EXPECT_TRUE(says(r, "its mode 0640 lets group or others read or write it")) << r.output;
  EXPECT_TRUE(says(r, "chmod 600")) << r.output;

  r = run(listen_args({"--ocsp", dir / "none.der"}), "", 30s);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(says(r, "cannot open the OCSP response file")) << r.output;
  EXPECT_TRUE(says(r, "(--ocsp)")) << r.output;

  r = run(listen_args({"--ocsp", cert("server-rsa.pem")}), "", 30s);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(says(r, "is not a DER OCSP response")) << r.output;

  // Both are server flags: connect has neither.
  r = run(cmd({"connect", "localhost", "1", "--ticket-keys", dir / "none.key"}), "", 30s);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(says(r, "not expected")) << r.output;
  EXPECT_TRUE(says(r, "--ticket-keys")) << r.output;

  r = run(cmd({"listen", "--help"}), "", 30s);
  EXPECT_TRUE(says(r, "--ticket-keys")) << r.output;
  EXPECT_TRUE(says(r, "--ocsp")) << r.output;
  EXPECT_TRUE(says(r, "--ticket-keys ticket.key --ocsp")) << r.output;
}

// One TLS 1.3 ticket per handshake (SSL_CTX_set_num_tickets(1)), full or resumed, with our
// ticket keys as without: openssl s_client reports each ticket that arrives.
TEST(TicketKeys, OneTls13TicketPerHandshakeFullOrResumed) {
  temp_dir dir("tickets-count");
  write(dir / "ticket.key", random_keys(1));
  for (const std::string& keys : {std::string(), dir / "ticket.key"}) {
    SCOPED_TRACE(keys.empty() ? "rotating keys" : "a key file");
    auto ctx = make_ssl_server_context(server_with_keys(keys));
    auto one = [&](const std::vector<std::string>& flags) {
      auto listener = make_socket(passive{.local_host = "127.0.0.1"});
      std::vector<std::string> argv{
          "openssl",     "s_client",
          "-connect",    "127.0.0.1:" + std::to_string(listener.local_port()),
          "-servername", "localhost",
          "-CAfile",     cert("ca.pem"),
          "-tls1_3",     "-ign_eof"};
      argv.insert(argv.end(), flags.begin(), flags.end());
      process cli(argv);
      cli.close_stdin();
      auto tls = make_ssl_server_stream(accept_within(listener, "openssl s_client"), ctx);
      tls.set_timeout(20s);
      tls << "x" << std::endl;
      tls.close();  // after the ticket and the line: s_client exits at the close_notify
      EXPECT_EQ(cli.wait(20s), 0) << cli.output();
      cli.drain(5s);
      auto out = cli.output();
      std::size_t tickets = 0;
      for (auto at = out.find("New Session Ticket arrived"); at != std::string::npos;
           at = out.find("New Session Ticket arrived", at + 1))
        ++tickets;
      EXPECT_EQ(tickets, 1u) << out;
      return out;
    };
    auto full = one({"-sess_out", dir / "s.pem"});
    EXPECT_NE(full.find("New, TLSv1.3"), std::string::npos) << full;
    auto resumed = one({"-sess_in", dir / "s.pem"});
    EXPECT_NE(resumed.find("Reused, TLSv1.3"), std::string::npos) << resumed;
  }
}
