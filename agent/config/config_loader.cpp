#include "agent/config/config_loader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <sstream>
#include <unistd.h>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "agent/config/small_file.h"
#include "agent/config/yaml_reader.h"
#include "agent/core/duration.h"
#include "agent/core/names.h"

namespace tetherd {
namespace {

constexpr std::size_t kMaxConfigBytes = 1 << 20;

void read_namespace(YamlReader& r, const YamlReader::Fields& f, const std::string& path,
                    std::string& out) {
  const YAML::Node* n = YamlReader::find(f, "namespace");
  if (n == nullptr) return;
  const std::string where = YamlReader::join(path, "namespace");
  auto s = r.scalar(*n, where, "a namespace name");
  if (!s) return;
  if (!is_dns_label(*s)) {
    r.error(r.mark_of(*n, where), where,
            "not a valid namespace name (lowercase letters, digits and '-', at most 63): " +
                quoted(*s));
  } else {
    out = *s;
  }
}

bool valid_listen_address(std::string_view s) {
  // ADDRESS:PORT with an IPv4 literal or a bracketed IPv6 literal.
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = s.substr(0, colon);
  const std::string_view port = s.substr(colon + 1);
  unsigned p = 0;
  const auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || err != std::errc() || end != port.data() + port.size() || p == 0 ||
      p > 65535) {
    return false;
  }
  if (host.front() == '[') {
    if (host.back() != ']') return false;
    host = host.substr(1, host.size() - 2);
    auto c = firewall::parse_cidr(host);
    return c && !c->is_v4() && host.find('/') == std::string_view::npos;
  }
  auto c = firewall::parse_cidr(host);
  return c && c->is_v4() && host.find('/') == std::string_view::npos;
}

// Plain http:// only: the linkerd proxy's admin port (4191) speaks no TLS,
// and there would be no CA to check one with.
bool valid_http_url(std::string_view s) {
  if (!s.starts_with("http://")) return false;
  const std::string_view rest = s.substr(7);
  const std::string_view authority = rest.substr(0, rest.find('/'));
  return !authority.empty() && authority.front() != ':' &&
         authority.find_first_of(" \t@") == std::string_view::npos;
}

void read_control_plane(YamlReader& r, const YAML::Node& node, ControlPlaneConfig& c) {
  const std::string p = "controlPlane";
  auto f = r.fields(
      node, p,
      {"kubeconfig", "namespace", "heartbeatInterval", "leaseDuration", "bootstrapKubeconfig"});
  r.absolute_path(f, "kubeconfig", p, c.kubeconfig);
  r.absolute_path(f, "bootstrapKubeconfig", p, c.bootstrap_kubeconfig);
  read_namespace(r, f, p, c.namespace_);
  r.duration(f, "heartbeatInterval", p, 1s, 1h, c.heartbeat_interval);
  r.duration(f, "leaseDuration", p, 1s, 24h, c.lease_duration);
  r.whole_seconds(f, "leaseDuration", p, c.lease_duration);

  if (c.lease_duration <= c.heartbeat_interval) {
    const YAML::Node* n = YamlReader::find(f, "leaseDuration");
    if (n == nullptr) n = YamlReader::find(f, "heartbeatInterval");
    r.error(n ? r.mark_of(*n, p) : node.Mark(), p + ".leaseDuration",
            "must be longer than heartbeatInterval (" + format_duration(c.lease_duration) +
                " <= " + format_duration(c.heartbeat_interval) + ")");
  }
}

void read_firewall(YamlReader& r, const YAML::Node& node, FirewallConfig& c) {
  const std::string p = "firewall";
  auto f =
      r.fields(node, p,
               {"backend", "ports", "allow", "alwaysAllow", "clusterNetworks", "maxSources",
                "minPrefixLength", "onStop", "verdict", "cloudAddressHint", "closeWhenTunnelled"});
  r.enumeration<FirewallBackend>(f, "backend", p,
                                 {{"nftables", FirewallBackend::kNftables},
                                  {"ufw", FirewallBackend::kUfw},
                                  {"none", FirewallBackend::kNone}},
                                 c.backend);
  r.enumeration<OnStop>(f, "onStop", p, {{"keep", OnStop::kKeep}, {"remove", OnStop::kRemove}},
                        c.on_stop);
  r.enumeration(f, "closeWhenTunnelled", p, {{"true", true}, {"false", false}},
                c.close_when_tunnelled);
  r.enumeration<firewall::Verdict>(
      f, "verdict", p, {{"drop", firewall::Verdict::kDrop}, {"reject", firewall::Verdict::kReject}},
      c.verdict);
  if (const YAML::Node* n = YamlReader::find(f, "ports")) {
    const std::string where = p + ".ports";
    if (!n->IsSequence() || n->size() == 0) {
      r.error(r.mark_of(*n, where), where, "expected a non-empty list of ports, e.g. [6443, 4143]");
    } else {
      std::vector<std::uint16_t> ports;
      for (std::size_t i = 0; i < n->size(); ++i) {
        const std::string item_path = where + "[" + std::to_string(i) + "]";
        const YAML::Node item = (*n)[i];
        auto v = r.unsigned_value(item, item_path, 1, 65535, "a port");
        if (!v) continue;
        const auto port = static_cast<std::uint16_t>(*v);
        if (std::find(ports.begin(), ports.end(), port) != ports.end()) {
          r.error(r.mark_of(item, item_path), item_path,
                  "port " + std::to_string(port) + " is listed twice");
          continue;
        }
        ports.push_back(port);
      }
      c.ports = std::move(ports);
    }
  }
  r.cidrs(f, "allow", p, c.allow);
  r.cidrs(f, "alwaysAllow", p, c.always_allow);
  r.cidrs(f, "clusterNetworks", p, c.cluster_networks);
  if (const YAML::Node* n = YamlReader::find(f, "minPrefixLength")) {
    const std::string where = p + ".minPrefixLength";
    auto mf = r.fields(*n, where, {"ipv4", "ipv6"});
    if (const YAML::Node* v4 = YamlReader::find(mf, "ipv4")) {
      if (auto v = r.unsigned_value(*v4, where + ".ipv4", 0, 32, "a prefix length"))
        c.min_prefix_v4 = static_cast<std::uint8_t>(*v);
    }
    if (const YAML::Node* v6 = YamlReader::find(mf, "ipv6")) {
      if (auto v = r.unsigned_value(*v6, where + ".ipv6", 0, 128, "a prefix length"))
        c.min_prefix_v6 = static_cast<std::uint8_t>(*v);
    }
  }
  if (const YAML::Node* n = YamlReader::find(f, "cloudAddressHint")) {
    // The records bound these: the cloud's last connection is kept a day,
    // a refused source's first packet 10 minutes.
    const std::string where = p + ".cloudAddressHint";
    auto hf = r.fields(*n, where, {"quietAfter", "attempts", "over"});
    CloudAddressHintConfig& h = c.cloud_address_hint;
    r.duration(hf, "quietAfter", where, 1s, 24h, h.quiet_after);
    r.duration(hf, "over", where, 0s, 9min, h.over);
    // The record's times are whole seconds.
    r.whole_seconds(hf, "quietAfter", where, h.quiet_after);
    r.whole_seconds(hf, "over", where, h.over);
    if (const YAML::Node* a = YamlReader::find(hf, "attempts")) {
      if (auto v = r.unsigned_value(*a, where + ".attempts", 1, 100000, "a number of attempts"))
        h.attempts = static_cast<std::uint32_t>(*v);
    }
  }
  if (const YAML::Node* n = YamlReader::find(f, "maxSources")) {
    if (auto v = r.unsigned_value(*n, p + ".maxSources", 1, 65536, "a number of sources")) {
      c.max_sources = static_cast<std::uint32_t>(*v);
    }
  }
  const std::size_t static_sources = c.allow.size() + c.always_allow.size();
  if (static_sources > c.max_sources) {
    const YAML::Node* n = YamlReader::find(f, "allow");
    r.error(n ? r.mark_of(*n, p + ".allow") : node.Mark(), p + ".allow",
            "allow and alwaysAllow list " + std::to_string(static_sources) +
                " sources, more than maxSources (" + std::to_string(c.max_sources) + ")");
  }
}

void read_linkerd(YamlReader& r, const YAML::Node& node, LinkerdConfig& c) {
  const std::string p = "linkerd";
  auto f = r.fields(
      node, p,
      {"namespace", "rotateBefore", "issuerValidity", "trustAnchorKey", "healExpiredProxies"});
  read_namespace(r, f, p, c.namespace_);
  r.enumeration(f, "healExpiredProxies", p, {{"true", true}, {"false", false}},
                c.heal_expired_proxies);
  r.duration(f, "rotateBefore", p, 1min, 87600h, c.rotate_before);
  r.duration(f, "issuerValidity", p, 1h, 87600h, c.issuer_validity);
  r.absolute_path(f, "trustAnchorKey", p, c.trust_anchor_key);
  if (c.rotate_before >= c.issuer_validity) {
    const YAML::Node* n = YamlReader::find(f, "rotateBefore");
    if (n == nullptr) n = YamlReader::find(f, "issuerValidity");
    r.error(n ? r.mark_of(*n, p) : node.Mark(), p + ".rotateBefore",
            "must be shorter than issuerValidity (" + format_duration(c.rotate_before) +
                " >= " + format_duration(c.issuer_validity) +
                "), or every new issuer would be due for rotation at once");
  }
}

// https://HOST:PORT and nothing more: the servers' agent port.
bool valid_agent_url(std::string_view s) {
  if (!s.starts_with("https://")) return false;
  std::string_view authority = s.substr(8);
  if (authority.ends_with("/")) authority.remove_suffix(1);
  const auto colon = authority.rfind(':');
  return !authority.empty() && authority.front() != ':' &&
         authority.find_first_of(" \t@/?#") == std::string_view::npos &&
         colon != std::string_view::npos && colon + 1 < authority.size() &&
         authority.find_first_not_of("0123456789", colon + 1) == std::string_view::npos;
}

void read_tunnel(YamlReader& r, const YAML::Node& node, TunnelConfig& c) {
  const std::string p = "tunnel";
  auto f = r.fields(node, p,
                    {"server", "kubeconfig", "agentID", "agentIdentifiers", "destinations",
                     "maxConnections", "idleTimeout"});
  if (const YAML::Node* n = YamlReader::find(f, "server")) {
    const std::string where = p + ".server";
    if (auto s = r.scalar(*n, where, "an https:// URL")) {
      if (!valid_agent_url(*s))
        r.error(r.mark_of(*n, where), where,
                "expected https://HOST:PORT (the konnectivity servers' agent port, e.g. "
                "https://konnectivity.example.net:8091), got " +
                    quoted(*s));
      else
        c.server = *s;
    }
  } else {
    r.error(node.Mark(), p + ".server",
            "required: the konnectivity servers' agent port, e.g. "
            "https://konnectivity.example.net:8091");
  }
  r.absolute_path(f, "kubeconfig", p, c.kubeconfig);
  r.string(f, "agentID", p, c.agent_id);
  r.string(f, "agentIdentifiers", p, c.agent_identifiers);
  if (const YAML::Node* n = YamlReader::find(f, "destinations")) {
    const std::string where = p + ".destinations";
    if (!n->IsSequence() || n->size() == 0) {
      r.error(r.mark_of(*n, where), where,
              "expected a non-empty list of HOST:PORT, e.g. [\"127.0.0.1:6443\"]");
    } else {
      std::vector<Destination> out;
      for (std::size_t i = 0; i < n->size(); ++i) {
        const std::string item_path = where + "[" + std::to_string(i) + "]";
        const YAML::Node item = (*n)[i];
        auto s = r.scalar(item, item_path, "HOST:PORT");
        if (!s) continue;
        auto d = parse_destination(*s);
        if (!d) {
          r.error(r.mark_of(item, item_path), item_path, d.error().message);
        } else if (std::find(out.begin(), out.end(), *d) != out.end()) {
          r.error(r.mark_of(item, item_path), item_path, to_string(*d) + " is listed twice");
        } else {
          out.push_back(std::move(*d));
        }
      }
      c.destinations = std::move(out);
    }
  }
  if (const YAML::Node* n = YamlReader::find(f, "maxConnections")) {
    if (auto v = r.unsigned_value(*n, p + ".maxConnections", 1, 4096, "a number of connections"))
      c.max_connections = static_cast<std::uint32_t>(*v);
  }
  r.duration(f, "idleTimeout", p, 1min, 24h, c.idle_timeout);
}

Config read_config(YamlReader& r, const YAML::Node& root, const LoadOptions& options) {
  Config c;
  auto f = r.fields(root, "",
                    {"node", "controlPlane", "cluster", "firewall", "linkerd", "tunnel", "health",
                     "metrics", "state"});

  c.node_name = options.host_name;
  std::optional<YAML::Node> name_node;
  if (const YAML::Node* n = YamlReader::find(f, "node")) {
    auto nf = r.fields(*n, "node", {"name"});
    if (const YAML::Node* name = YamlReader::find(nf, "name")) name_node = *name;
    r.string(nf, "name", "node", c.node_name);
  }
  // The EdgeNode is named after the node and the Lease tetherd-<node>: both
  // must be valid object names.
  if (!is_dns_subdomain(c.node_name) || c.node_name.size() > 245) {
    const std::string rule =
        " must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 245 "
        "characters)";
    if (name_node) {
      r.error(r.mark_of(*name_node, "node.name"), "node.name", quoted(c.node_name) + rule);
    } else {
      r.error(YAML::Mark::null_mark(), "node.name",
              "not set, and the host name " + quoted(c.node_name) + " cannot be used: a node name" +
                  rule);
    }
  }

  if (const YAML::Node* n = YamlReader::find(f, "controlPlane"); n && !n->IsNull()) {
    read_control_plane(r, *n, c.control_plane.emplace());
  }
  if (const YAML::Node* n = YamlReader::find(f, "cluster"); n && !n->IsNull()) {
    auto cf = r.fields(*n, "cluster", {"kubeconfig"});
    r.absolute_path(cf, "kubeconfig", "cluster", c.cluster.emplace().kubeconfig);
  }
  if (const YAML::Node* n = YamlReader::find(f, "firewall")) read_firewall(r, *n, c.firewall);
  if (const YAML::Node* n = YamlReader::find(f, "linkerd"); n && !n->IsNull()) {
    read_linkerd(r, *n, c.linkerd.emplace());
  }
  if (const YAML::Node* n = YamlReader::find(f, "tunnel"); n && !n->IsNull()) {
    read_tunnel(r, *n, c.tunnel.emplace());
    // Its credentials are the node's, unless it names its own.
    if (c.tunnel->kubeconfig.empty() && !c.control_plane)
      r.error(r.mark_of(*n, "tunnel"), "tunnel.kubeconfig",
              "required without controlPlane: the kubeconfig whose CA and client certificate "
              "the tunnel presents to the konnectivity servers");
  }
  if (c.firewall.close_when_tunnelled) {
    const YAML::Node* fw = YamlReader::find(f, "firewall");
    const YAML::Mark at = fw ? r.mark_of(*fw, "firewall") : root.Mark();
    if (c.firewall.backend == FirewallBackend::kNone) {
      r.error(at, "firewall.closeWhenTunnelled",
              "firewall.backend none filters nothing, so there is nothing to close");
    } else if (!c.tunnel) {
      r.error(at, "firewall.closeWhenTunnelled",
              "needs a tunnel section: the ports it closes are those the tunnel serves");
    } else if (tunnelled_ports(c).empty()) {
      r.error(at, "firewall.closeWhenTunnelled",
              "none of the tunnel's destinations is on a port of firewall.ports, so there is "
              "nothing to close");
    }
  }
  if (const YAML::Node* n = YamlReader::find(f, "health")) {
    auto hf = r.fields(*n, "health", {"interval", "threshold", "linkerdGateway"});
    r.duration(hf, "interval", "health", 1s, 1h, c.health.interval);
    if (const YAML::Node* t = YamlReader::find(hf, "threshold")) {
      if (auto v = r.unsigned_value(*t, "health.threshold", 1, 10, "a number of probe rounds"))
        c.health.threshold = static_cast<int>(*v);
    }
    if (const YAML::Node* g = YamlReader::find(hf, "linkerdGateway")) {
      const std::string where = "health.linkerdGateway";
      if (auto s = r.scalar(*g, where, "an http:// URL")) {
        if (!s->empty() && !valid_http_url(*s)) {
          r.error(r.mark_of(*g, where), where, "expected an http:// URL, got " + quoted(*s));
        } else {
          c.health.linkerd_gateway = *s;
        }
      }
    }
  }
  if (const YAML::Node* n = YamlReader::find(f, "metrics")) {
    auto mf = r.fields(*n, "metrics", {"listen"});
    if (const YAML::Node* l = YamlReader::find(mf, "listen")) {
      const std::string where = "metrics.listen";
      if (l->IsNull()) {
        c.metrics.listen.clear();
      } else if (auto s = r.scalar(*l, where, "ADDRESS:PORT")) {
        if (!s->empty() && !valid_listen_address(*s)) {
          r.error(r.mark_of(*l, where), where,
                  "expected ADDRESS:PORT such as 127.0.0.1:9477 or [::1]:9477 (empty: off), got " +
                      quoted(*s));
        } else {
          c.metrics.listen = *s;
        }
      }
    }
  }
  if (const YAML::Node* n = YamlReader::find(f, "state")) {
    auto sf = r.fields(*n, "state", {"dir"});
    r.absolute_path(sf, "dir", "state", c.state.dir);
  }
  return c;
}

}  // namespace

std::string ConfigError::format(std::string_view path) const {
  std::ostringstream out;
  out << path;
  if (line > 0) out << ":" << line << ":" << column;
  out << ": " << message;
  return out.str();
}

namespace {

// Where a second YAML document starts, if there is one. Not LoadAll:
// yaml-cpp 0.7 finds empty documents for ever after a stray ',' (",..",
// "a: 1\n...\n,": found by the config fuzz target), so the count stops at two.
class DocumentStarts final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  std::vector<YAML::Mark> marks;
};

std::optional<YAML::Mark> second_document(std::string_view yaml) {
  std::istringstream in{std::string(yaml)};
  YAML::Parser parser(in);
  DocumentStarts starts;
  for (int n = 0; n < 2 && parser.HandleNextDocument(starts); ++n) {
  }
  if (starts.marks.size() < 2) return std::nullopt;
  return starts.marks[1];
}

}  // namespace

std::variant<Config, ConfigErrors> parse_config(std::string_view yaml, const LoadOptions& options) {
  ConfigErrors errors;
  if (const auto at = find_non_yaml_character(yaml)) {
    errors.push_back({at->first, at->second, "a control character, which YAML does not allow"});
    return errors;
  }
  YAML::Node doc;
  std::optional<YAML::Mark> second;
  try {
    doc = YAML::Load(std::string(yaml));
    second = second_document(yaml);
  } catch (const YAML::Exception& e) {
    errors.push_back({e.mark.line + 1, e.mark.column + 1, "YAML syntax: " + e.msg});
    return errors;
  }
  if (second) {
    errors.push_back({second->line + 1, second->column + 1,
                      "expected one YAML document; another begins here (a '---', or text after "
                      "the document that YAML cannot place)"});
    return errors;
  }
  YamlReader reader(errors);
  Config config;
  try {
    config = read_config(reader, doc, options);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on some malformed trees (e.g. aliases to odd nodes).
    errors.push_back({e.mark.line + 1, e.mark.column + 1, e.msg});
  }
  if (!errors.empty()) {
    std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    return errors;
  }
  return config;
}

std::variant<Config, ConfigErrors> load_config_file(const std::string& path,
                                                    const LoadOptions& options) {
  auto text = read_small_file(path, kMaxConfigBytes, "the file");
  if (!text) return ConfigErrors{{0, 0, text.error().message}};
  return parse_config(*text, options);
}

std::string default_host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  std::string name(buf);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return name;
}

std::vector<firewall::Cidr> default_always_allow() {
  return {*firewall::parse_cidr("10.42.0.0/16"), *firewall::parse_cidr("10.43.0.0/16")};
}

std::vector<firewall::Cidr> default_cluster_networks() {
  return default_always_allow();
}

std::vector<std::uint16_t> tunnelled_ports(const std::vector<std::uint16_t>& managed,
                                           const std::vector<Destination>& destinations) {
  std::vector<std::uint16_t> out;
  for (const Destination& d : destinations)
    if (std::find(managed.begin(), managed.end(), d.port) != managed.end()) out.push_back(d.port);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::uint16_t> tunnelled_ports(const Config& config) {
  if (!config.tunnel) return {};
  return tunnelled_ports(config.firewall.ports, config.tunnel->destinations);
}

const char* to_string(FirewallBackend b) {
  switch (b) {
    case FirewallBackend::kNftables:
      return "nftables";
    case FirewallBackend::kUfw:
      return "ufw";
    case FirewallBackend::kNone:
      return "none";
  }
  return "?";
}

const char* to_string(OnStop s) {
  return s == OnStop::kKeep ? "keep" : "remove";
}

}  // namespace tetherd
