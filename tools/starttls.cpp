// The plaintext exchanges of --starttls. Each reads only what its protocol allows, bounded in
// time (one deadline for the whole exchange) and in size, and refuses a server that sends
// anything after its go-ahead: those bytes would be taken as the first TLS bytes, or worse, as
// answers to commands sent later inside TLS (CVE-2011-0411, CVE-2021-23222).
#include "starttls.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <sslstream/error.hpp>
#include <sstream>
#include <string_view>

namespace cli {

using namespace sslstream;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::array<const char*, 7> protocols{"smtp", "imap",     "pop3", "ftp",
                                               "xmpp", "postgres", "ldap"};
constexpr std::size_t max_line = 8192;        // IMAP capability lines run to a few KiB
constexpr std::size_t max_total = 64 * 1024;  // the whole preamble, all replies together

/// At most 300 characters of what the server said, control bytes escaped, for a message.
std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 300)) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\r') continue;
    if (c == '\n') {
      out += " | ";
    } else if (u < 0x20 || u >= 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  while (out.ends_with(" | ")) out.resize(out.size() - 3);
  if (s.size() > 300) out += "...";
  return out;
}

std::string seconds_text(std::chrono::milliseconds t) {
  std::ostringstream os;
  os << static_cast<double>(t.count()) / 1000.0;
  return os.str();
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

/// True when `line` holds `word` as a whole space-separated token (case-insensitive).
bool has_token(std::string_view line, std::string_view word) {
  std::string l = upper(std::string(line)), w = upper(std::string(word));
  for (char& c : l)
    if (c == '\r' || c == '\t' || c == '[' || c == ']' || c == '-') c = ' ';
  std::size_t pos = 0;
  while ((pos = l.find(w, pos)) != std::string::npos) {
    bool start = pos == 0 || l[pos - 1] == ' ';
    bool end = pos + w.size() == l.size() || l[pos + w.size()] == ' ';
    if (start && end) return true;
    pos += w.size();
  }
  return false;
}

/// One server's plaintext exchange: what it sent and not yet parsed, and the deadline.
class preamble {
 public:
  preamble(socket_stream& sock, std::string name, std::chrono::milliseconds limit)
      : sock_(sock), name_(std::move(name)), limit_(limit), deadline_(clock_type::now() + limit) {}

  [[noreturn]] void refuse(const std::string& what) const {
    throw tls_error(make_error_code(errc::handshake_failed), "starttls-refused",
                    "STARTTLS (" + name_ + "): " + what);
  }

  void send(std::string_view text, std::string_view waiting_for) {
    waiting_ = waiting_for;
    set_timeouts();
    sock_.write_all(std::as_bytes(std::span(text.data(), text.size())));
  }

  /// One line without its CR LF.
  std::string line() {
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (l.ends_with('\r')) l.pop_back();
        return l;
      }
      if (buf_.size() > max_line)
        refuse("the server sent a line of more than " + std::to_string(max_line) +
               " bytes while we waited for " + waiting_ + ": " + shown(buf_));
      more();
    }
  }

  /// Exactly `n` bytes.
  std::string bytes(std::size_t n) {
    while (buf_.size() < n) more();
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }

  /// Reads until `buf_` holds one of `ends`; returns everything up to and including it.
  std::string until(std::initializer_list<std::string_view> ends) {
    for (;;) {
      for (auto e : ends)
        if (auto p = buf_.find(e); p != std::string::npos) {
          std::string out = buf_.substr(0, p + e.size());
          buf_.erase(0, p + e.size());
          return out;
        }
      more();
    }
  }

  /// After the go-ahead: nothing more may have come, or TLS would start on the server's bytes.
  void expect_nothing_more() {
    std::array<std::byte, 512> extra{};
    if (buf_.empty()) {
      auto r = sock_.try_read_some(extra);
      if (r.status == io_status::done && r.bytes > 0)
        buf_.assign(reinterpret_cast<const char*>(extra.data()), r.bytes);
    }
    if (!buf_.empty())
      refuse("the server sent " + std::to_string(buf_.size()) +
             " more bytes right after its go-ahead (" + shown(buf_) +
             "): they would be taken as TLS (a STARTTLS injection, as in CVE-2011-0411); "
             "refusing the connection");
  }

 private:
  void set_timeouts() {
    if (limit_.count() == 0) return;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - clock_type::now());
    if (left.count() <= 0) stalled();
    sock_.set_timeout(left);
  }

  [[noreturn]] void stalled() const {
    throw socket_error(std::error_code(ETIMEDOUT, std::system_category()), "timeout",
                       "STARTTLS (" + name_ + "): " + waiting_ + " did not come within " +
                           seconds_text(limit_) +
                           " s (--connect-timeout, which bounds the whole plaintext exchange); " +
                           (buf_.empty() ? "the server sent nothing more"
                                         : "the server's last bytes: " + shown(buf_)));
  }

  void more() {
    if (total_ >= max_total)
      refuse("the server sent more than " + std::to_string(max_total) +
             " bytes while we waited for " + waiting_);
    std::array<std::byte, 4096> chunk{};
    set_timeouts();
    std::size_t n = 0;
    try {
      n = sock_.read_some(std::span(chunk).first(std::min(chunk.size(), max_total - total_)));
    } catch (const socket_error& e) {
      if (e.identifier() == "timeout") stalled();
      throw;
    }
    if (n == 0)
      refuse("the server closed the connection while we waited for " + waiting_ +
             (buf_.empty() ? std::string() : " (its last bytes: " + shown(buf_) + ")"));
    total_ += n;
    buf_.append(reinterpret_cast<const char*>(chunk.data()), n);
  }

  socket_stream& sock_;
  std::string name_;
  std::chrono::milliseconds limit_;
  clock_type::time_point deadline_;
  std::string buf_;
  std::string waiting_ = "the greeting";
  std::size_t total_ = 0;
};

/// A reply of SMTP or FTP: "250-..." lines, then "250 ...". FTP's inner lines may be anything.
struct reply {
  int code = 0;
  std::string text;  ///< all its lines, joined by '\n'
};

reply read_reply(preamble& p) {
  reply r;
  std::string first = p.line();
  auto coded = [](const std::string& l) {
    return l.size() >= 3 && std::isdigit(static_cast<unsigned char>(l[0])) &&
           std::isdigit(static_cast<unsigned char>(l[1])) &&
           std::isdigit(static_cast<unsigned char>(l[2])) &&
           (l.size() == 3 || l[3] == ' ' || l[3] == '-');
  };
  if (!coded(first))
    p.refuse("the server's answer is not a reply of this protocol: " + shown(first));
  r.code = std::stoi(first.substr(0, 3));
  r.text = first;
  if (first.size() > 3 && first[3] == '-') {
    for (;;) {  // up to the line with the same code and a space (RFC 959 §4.2, RFC 5321 §4.2.1)
      std::string l = p.line();
      r.text += '\n' + l;
      if (l.size() >= 3 && l.compare(0, 3, first, 0, 3) == 0 && (l.size() == 3 || l[3] == ' '))
        break;
    }
  }
  return r;
}

std::string ehlo_name(const socket_stream& sock) {
  // RFC 5321 §4.1.4: the client's domain, or its address literal when it has no name.
  std::string a = sock.local_host();
  return a.find(':') != std::string::npos ? "[IPv6:" + a + "]" : "[" + a + "]";
}

void smtp(socket_stream& sock, preamble& p) {
  auto greeting = read_reply(p);
  if (greeting.code != 220) p.refuse("the server's greeting is not 220: " + shown(greeting.text));
  p.send("EHLO " + ehlo_name(sock) + "\r\n", "the reply to EHLO");
  auto ehlo = read_reply(p);
  if (ehlo.code != 250) p.refuse("the server refused EHLO: " + shown(ehlo.text));
  bool offered = false;
  std::size_t start = 0;
  while (start <= ehlo.text.size()) {
    auto end = std::min(ehlo.text.find('\n', start), ehlo.text.size());
    auto l = std::string_view(ehlo.text).substr(start, end - start);
    if (l.size() > 4 && upper(std::string(l.substr(4))) == "STARTTLS") offered = true;
    start = end + 1;
  }
  if (!offered)
    p.refuse("the server does not offer STARTTLS (its EHLO reply: " + shown(ehlo.text) + ")");
  p.send("STARTTLS\r\n", "the reply to STARTTLS");
  auto go = read_reply(p);
  if (go.code != 220) p.refuse("the server refused STARTTLS: " + shown(go.text));
}

/// IMAP: untagged lines up to the one tagged `tag`; returns the tagged one, collects the rest.
std::string imap_tagged(preamble& p, const std::string& tag, std::string& untagged) {
  for (;;) {
    auto l = p.line();
    if (l.starts_with(tag + " ")) return l;
    untagged += l + '\n';
  }
}

void imap(preamble& p) {
  auto greeting = p.line();
  if (!upper(greeting).starts_with("* OK"))
    p.refuse("the server's greeting is not * OK: " + shown(greeting));
  p.send("a1 CAPABILITY\r\n", "the reply to CAPABILITY");
  std::string caps;
  auto done = imap_tagged(p, "a1", caps);
  if (!upper(done).starts_with("A1 OK")) p.refuse("the server refused CAPABILITY: " + shown(done));
  bool offered = false;
  std::size_t start = 0;
  while (start < caps.size()) {
    auto end = caps.find('\n', start);
    auto l = caps.substr(start, end - start);
    if (upper(l).starts_with("* CAPABILITY ") && has_token(l, "STARTTLS")) offered = true;
    start = end + 1;
  }
  if (!offered)
    p.refuse("the server does not offer STARTTLS (its capabilities: " + shown(caps) + ")");
  p.send("a2 STARTTLS\r\n", "the reply to STARTTLS");
  std::string ignored;
  auto go = imap_tagged(p, "a2", ignored);
  if (!upper(go).starts_with("A2 OK")) p.refuse("the server refused STARTTLS: " + shown(go));
}

void pop3(preamble& p) {
  auto greeting = p.line();
  if (!greeting.starts_with("+OK"))
    p.refuse("the server's greeting is not +OK: " + shown(greeting));
  p.send("CAPA\r\n", "the reply to CAPA");
  auto ok = p.line();
  if (!ok.starts_with("+OK"))
    p.refuse("the server refused CAPA, so it cannot announce STLS (RFC 2595): " + shown(ok));
  bool offered = false;
  std::string caps;
  for (auto l = p.line(); l != "."; l = p.line()) {
    caps += l + '\n';
    if (has_token(l, "STLS") && upper(l).starts_with("STLS")) offered = true;
  }
  if (!offered) p.refuse("the server does not offer STLS (its CAPA reply: " + shown(caps) + ")");
  p.send("STLS\r\n", "the reply to STLS");
  auto go = p.line();
  if (!go.starts_with("+OK")) p.refuse("the server refused STLS: " + shown(go));
}

void ftp(preamble& p) {
  auto greeting = read_reply(p);
  if (greeting.code != 220) p.refuse("the server's greeting is not 220: " + shown(greeting.text));
  p.send("AUTH TLS\r\n", "the reply to AUTH TLS");
  auto go = read_reply(p);
  if (go.code != 234) p.refuse("the server refused AUTH TLS: " + shown(go.text));
}

std::string xml_escaped(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\'')
      out += "&apos;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else
      out += c;
  }
  return out;
}

void xmpp(preamble& p, const std::string& domain) {
  p.send("<?xml version='1.0'?><stream:stream to='" + xml_escaped(domain) +
             "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
             "version='1.0'>",
         "the stream features");
  // The stream header, then <stream:features>...</stream:features> (or empty, or an error).
  auto got = p.until({"</stream:features>", "<stream:features/>", "</stream:error>"});
  if (got.find("<stream:error") != std::string::npos)
    p.refuse("the server answered with a stream error: " + shown(got));
  if (got.find("<starttls") == std::string::npos)
    p.refuse("the server does not offer <starttls/> in its features: " + shown(got));
  p.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "the answer to <starttls/>");
  auto go = p.until({"/>", "</proceed>", "</failure>"});
  if (go.find("<proceed") == std::string::npos)
    p.refuse("the server did not answer <proceed/>: " + shown(go));
}

void postgres(preamble& p) {
  // SSLRequest: length 8, then the code 80877103 (1234 << 16 | 5679), both big-endian.
  p.send(std::string_view("\x00\x00\x00\x08\x04\xd2\x16\x2f", 8), "the answer to SSLRequest");
  auto answer = p.bytes(1);
  if (answer == "N")
    p.refuse(
        "the server answered N to SSLRequest: it does not accept TLS (ssl = off in its "
        "postgresql.conf)");
  if (answer != "S")
    p.refuse("the server answered '" + shown(answer) +
             "' to SSLRequest, not S (an error message, or not a PostgreSQL server)");
}

/// BER, as much as LDAP's ExtendedResponse needs: a tag, a definite length, the contents.
struct ber {
  unsigned char tag = 0;
  std::string content;
};

ber read_ber(preamble& p) {
  ber b;
  b.tag = static_cast<unsigned char>(p.bytes(1)[0]);
  auto first = static_cast<unsigned char>(p.bytes(1)[0]);
  std::size_t len = first;
  if (first & 0x80) {
    std::size_t n = first & 0x7f;
    if (n == 0 || n > 3) p.refuse("the server's LDAP message has an unusable BER length");
    len = 0;
    for (auto c : p.bytes(n)) len = len << 8 | static_cast<unsigned char>(c);
  }
  if (len > max_total)
    p.refuse("the server's LDAP message is too long (" + std::to_string(len) + " bytes)");
  b.content = p.bytes(len);
  return b;
}

/// The next element of `s` from `pos` (within an already read message).
bool next_ber(const std::string& s, std::size_t& pos, ber& out) {
  if (pos + 2 > s.size()) return false;
  out.tag = static_cast<unsigned char>(s[pos]);
  std::size_t len = static_cast<unsigned char>(s[pos + 1]);
  pos += 2;
  if (len & 0x80) {
    std::size_t n = len & 0x7f;
    if (n == 0 || n > 3 || pos + n > s.size()) return false;
    len = 0;
    for (std::size_t i = 0; i < n; ++i) len = len << 8 | static_cast<unsigned char>(s[pos + i]);
    pos += n;
  }
  if (pos + len > s.size()) return false;
  out.content = s.substr(pos, len);
  pos += len;
  return true;
}

void ldap(preamble& p) {
  // LDAPMessage { messageID 1, ExtendedRequest [APPLICATION 23] { requestName [0]
  // "1.3.6.1.4.1.1466.20037" } } (RFC 4511 §4.12, RFC 4513 §3).
  static const char oid[] = "1.3.6.1.4.1.1466.20037";
  std::string req = "\x30\x1d\x02\x01\x01\x77\x18\x80\x16";
  req.append(oid, sizeof oid - 1);
  p.send(req, "the StartTLS extended response");
  auto msg = read_ber(p);
  ber id, op, code;
  std::size_t pos = 0;
  if (msg.tag != 0x30 || !next_ber(msg.content, pos, id) || id.tag != 0x02 ||
      !next_ber(msg.content, pos, op))
    p.refuse("the server's answer is not an LDAP message");
  if (op.tag != 0x78) p.refuse("the server's answer is not an ExtendedResponse");
  std::size_t inner = 0;
  if (!next_ber(op.content, inner, code) || code.tag != 0x0a || code.content.empty())
    p.refuse("the server's ExtendedResponse has no resultCode");
  long result = 0;
  for (auto c : code.content) result = result << 8 | static_cast<unsigned char>(c);
  ber matched, diag;
  std::string text;
  if (next_ber(op.content, inner, matched) && next_ber(op.content, inner, diag))
    text = diag.content;
  bool unsolicited = id.content == std::string(1, '\0');
  if (result != 0 || unsolicited)
    p.refuse(std::string(unsolicited ? "the server sent a notice of disconnection"
                                     : "the server refused StartTLS") +
             ": resultCode " + std::to_string(result) +
             (result == 2    ? " (protocolError: StartTLS unsupported or not allowed now)"
              : result == 52 ? " (unavailable)"
                             : "") +
             (text.empty() ? "" : ", \"" + shown(text) + "\""));
}

}  // namespace

void add_starttls_flag(CLI::App& app, std::string& protocol) {
  app.add_option("--starttls", protocol,
                 "speak PROTO's plaintext exchange first (bounded by --connect-timeout), then TLS "
                 "on the same connection: smtp, imap, pop3, ftp, xmpp, postgres or ldap")
      ->type_name("PROTO")
      ->check(CLI::Validator(
          [](std::string& p) -> std::string {
            if (std::find_if(protocols.begin(), protocols.end(),
                             [&](const char* q) { return p == q; }) != protocols.end())
              return {};
            return "expects one of smtp, imap, pop3, ftp, xmpp, postgres, ldap, not '" + p + "'";
          },
          "PROTO"));
}

void starttls(socket_stream& sock, const std::string& protocol, const std::string& domain,
              std::chrono::milliseconds limit) {
  preamble p(sock, protocol, limit);
  if (protocol == "smtp")
    smtp(sock, p);
  else if (protocol == "imap")
    imap(p);
  else if (protocol == "pop3")
    pop3(p);
  else if (protocol == "ftp")
    ftp(p);
  else if (protocol == "xmpp")
    xmpp(p, domain);
  else if (protocol == "postgres")
    postgres(p);
  else if (protocol == "ldap")
    ldap(p);
  else
    throw std::invalid_argument("--starttls: unknown protocol '" + protocol + "'");
  p.expect_nothing_more();
  sock.set_timeout(std::chrono::milliseconds(0));
}

}  // namespace cli
