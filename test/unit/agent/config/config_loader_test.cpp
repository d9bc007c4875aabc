#include "agent/config/config_loader.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace tetherd {
namespace {

using namespace std::chrono_literals;

const LoadOptions kOptions{"edge-1"};

Config parse_ok(std::string_view yaml) {
  auto got = parse_config(yaml, kOptions);
  if (auto* errors = std::get_if<ConfigErrors>(&got)) {
    std::string all;
    for (const auto& e : *errors)
      all += e.format("test.yaml") + "\n";
    ADD_FAILURE() << "unexpected errors:\n" << all;
    return Config{};
  }
  return std::get<Config>(got);
}

std::vector<std::string> errors_of(std::string_view yaml, LoadOptions options = kOptions) {
  auto got = parse_config(yaml, options);
  std::vector<std::string> out;
  if (auto* errors = std::get_if<ConfigErrors>(&got)) {
    for (const auto& e : *errors)
      out.push_back(e.format("t.yaml"));
  }
  return out;
}

TEST(ConfigLoader, EmptyFileGivesStandaloneDefaults) {
  const Config c = parse_ok("");
  EXPECT_EQ(c.node_name, "edge-1");
  EXPECT_TRUE(c.standalone());
  EXPECT_FALSE(c.cluster.has_value());
  EXPECT_FALSE(c.linkerd.has_value());
  EXPECT_EQ(c.firewall.backend, FirewallBackend::kNftables);
  EXPECT_EQ(c.firewall.ports, (std::vector<std::uint16_t>{6443, 4143, 4191}));
  ASSERT_EQ(c.firewall.always_allow.size(), 2u);
  EXPECT_EQ(c.firewall.always_allow[0].to_string(), "10.42.0.0/16");
  EXPECT_EQ(c.firewall.always_allow[1].to_string(), "10.43.0.0/16");
  EXPECT_EQ(c.firewall.cluster_networks, c.firewall.always_allow);
  EXPECT_TRUE(c.firewall.allow.empty());
  EXPECT_EQ(c.firewall.max_sources, 4096u);
  EXPECT_EQ(c.firewall.min_prefix_v4, 8);
  EXPECT_EQ(c.firewall.min_prefix_v6, 32);
  EXPECT_EQ(c.firewall.on_stop, OnStop::kKeep);
  EXPECT_EQ(c.firewall.verdict, firewall::Verdict::kDrop);
  EXPECT_EQ(c.health.interval, 60s);
  EXPECT_EQ(c.health.linkerd_gateway, "http://127.0.0.1:4191/ready");
  EXPECT_EQ(c.health.threshold, 2);
  EXPECT_EQ(c.metrics.listen, "127.0.0.1:9477");
  EXPECT_EQ(c.state.dir, "/var/lib/tetherd");
}

TEST(ConfigLoader, ControlCharactersAreRefusedBeforeYamlCppSeesThem) {
  // "\0,\0\0" made yaml-cpp 0.7 loop for ever (found by the config fuzz target).
  EXPECT_EQ(errors_of(std::string("\0,\0\0", 4)),
            std::vector<std::string>{"t.yaml:1:1: a control character, which YAML does not allow"});
  EXPECT_EQ(
      errors_of("firewall:\n  ports: [6443]\x01\n"),
      std::vector<std::string>{"t.yaml:2:16: a control character, which YAML does not allow"});
  EXPECT_TRUE(errors_of("# tabs\tand CRLF are fine\r\n").empty());
}

TEST(ConfigLoader, SectionsGetTheirDefaults) {
  const Config c = parse_ok("controlPlane: {}\ncluster: {}\nlinkerd: {}\n");
  ASSERT_TRUE(c.control_plane.has_value());
  EXPECT_EQ(c.control_plane->kubeconfig, "/etc/tetherd/controlplane.kubeconfig");
  EXPECT_EQ(c.control_plane->namespace_, "tetherd-system");
  EXPECT_EQ(c.control_plane->heartbeat_interval, 10s);
  EXPECT_EQ(c.control_plane->lease_duration, 40s);
  ASSERT_TRUE(c.cluster.has_value());
  EXPECT_EQ(c.cluster->kubeconfig, "/etc/rancher/k3s/k3s.yaml");
  ASSERT_TRUE(c.linkerd.has_value());
  EXPECT_EQ(c.linkerd->namespace_, "linkerd");
  EXPECT_EQ(c.linkerd->rotate_before, 720h);
  EXPECT_EQ(c.linkerd->issuer_validity, 8760h);
  EXPECT_EQ(c.linkerd->trust_anchor_key, "");
  EXPECT_FALSE(c.linkerd->heal_expired_proxies) << "report only, unless asked";
}

TEST(ConfigLoader, AnEmptySectionLeavesAnOptionalFeatureOff) {
  // "controlPlane:" with everything below commented out reads as null.
  const Config c = parse_ok("controlPlane:\nlinkerd:\n");
  EXPECT_TRUE(c.standalone());
  EXPECT_FALSE(c.linkerd.has_value());
}

TEST(ConfigLoader, ReadsEveryKey) {
  const Config c = parse_ok(R"(
node: {name: desktop.home}
controlPlane:
  kubeconfig: /etc/tetherd/cp.kubeconfig
  bootstrapKubeconfig: /etc/tetherd/bootstrap.kubeconfig
  namespace: edge
  heartbeatInterval: 5s
  leaseDuration: 1m
cluster: {kubeconfig: /etc/k3s.yaml}
firewall:
  backend: ufw
  ports: [6443]
  allow: [203.0.113.10/32, 2001:db8::/48]
  alwaysAllow: []
  clusterNetworks: [10.52.0.0/16, 2001:db8:42::/56]
  minPrefixLength: {ipv4: 16, ipv6: 48}
  maxSources: 100
  onStop: remove
  verdict: reject
  cloudAddressHint: {quietAfter: 10m, attempts: 3, over: 20s}
linkerd:
  namespace: mesh
  rotateBefore: 48h
  issuerValidity: 720h
  trustAnchorKey: /etc/tetherd/ta.key
  healExpiredProxies: true
health: {interval: 45s, threshold: 3, linkerdGateway: "http://[::1]:4191/ready"}
metrics: {listen: "[::1]:9100"}
state: {dir: /srv/tetherd}
)");
  EXPECT_EQ(c.node_name, "desktop.home");
  ASSERT_TRUE(c.control_plane);
  EXPECT_EQ(c.control_plane->kubeconfig, "/etc/tetherd/cp.kubeconfig");
  EXPECT_EQ(c.control_plane->bootstrap_kubeconfig, "/etc/tetherd/bootstrap.kubeconfig");
  EXPECT_EQ(c.control_plane->namespace_, "edge");
  EXPECT_EQ(c.control_plane->heartbeat_interval, 5s);
  EXPECT_EQ(c.control_plane->lease_duration, 60s);
  EXPECT_EQ(c.cluster->kubeconfig, "/etc/k3s.yaml");
  EXPECT_EQ(c.firewall.backend, FirewallBackend::kUfw);
  EXPECT_EQ(c.firewall.ports, (std::vector<std::uint16_t>{6443}));
  ASSERT_EQ(c.firewall.allow.size(), 2u);
  EXPECT_EQ(c.firewall.allow[1].to_string(), "2001:db8::/48");
  EXPECT_TRUE(c.firewall.always_allow.empty());
  ASSERT_EQ(c.firewall.cluster_networks.size(), 2u);
  EXPECT_EQ(c.firewall.cluster_networks[1].to_string(), "2001:db8:42::/56");
  EXPECT_EQ(c.firewall.max_sources, 100u);
  EXPECT_EQ(c.firewall.min_prefix_v4, 16);
  EXPECT_EQ(c.firewall.min_prefix_v6, 48);
  EXPECT_EQ(c.firewall.on_stop, OnStop::kRemove);
  EXPECT_EQ(c.firewall.verdict, firewall::Verdict::kReject);
  EXPECT_EQ(c.firewall.cloud_address_hint, (CloudAddressHintConfig{10min, 3, 20s}));
  EXPECT_EQ(c.linkerd->namespace_, "mesh");
  EXPECT_EQ(c.linkerd->rotate_before, 48h);
  EXPECT_EQ(c.linkerd->issuer_validity, 720h);
  EXPECT_EQ(c.linkerd->trust_anchor_key, "/etc/tetherd/ta.key");
  EXPECT_TRUE(c.linkerd->heal_expired_proxies);
  EXPECT_EQ(c.health.interval, 45s);
  EXPECT_EQ(c.health.threshold, 3);
  EXPECT_EQ(c.health.linkerd_gateway, "http://[::1]:4191/ready");
  EXPECT_EQ(c.metrics.listen, "[::1]:9100");
  EXPECT_EQ(c.state.dir, "/srv/tetherd");
}

TEST(ConfigLoader, TheTunnelIsOffUnlessConfiguredAndHasDefaults) {
  EXPECT_FALSE(parse_ok("").tunnel.has_value());
  const Config c = parse_ok("controlPlane: {}\ntunnel:\n  server: https://k.example:8091\n");
  ASSERT_TRUE(c.tunnel.has_value());
  EXPECT_EQ(c.tunnel->server, "https://k.example:8091");
  EXPECT_EQ(c.tunnel->kubeconfig, "") << "the control plane's";
  EXPECT_EQ(c.tunnel->agent_id, "") << "the node's name";
  EXPECT_EQ(c.tunnel->destinations, (std::vector<Destination>{{"127.0.0.1", 6443}}));
  EXPECT_EQ(c.tunnel->max_connections, 128u);
  EXPECT_EQ(c.tunnel->idle_timeout, 1h);

  const Config own = parse_ok(
      "tunnel:\n  server: https://[2001:db8::1]:8091\n  kubeconfig: /etc/t/tunnel.kubeconfig\n"
      "  agentID: edge-1-agent\n  agentIdentifiers: host=192.0.2.7\n"
      "  destinations: [\"127.0.0.1:6443\", \"[::1]:6443\"]\n  maxConnections: 16\n"
      "  idleTimeout: 10m\n");
  ASSERT_TRUE(own.tunnel.has_value());
  EXPECT_EQ(own.tunnel->kubeconfig, "/etc/t/tunnel.kubeconfig");
  EXPECT_EQ(own.tunnel->agent_id, "edge-1-agent");
  EXPECT_EQ(own.tunnel->agent_identifiers, "host=192.0.2.7");
  EXPECT_EQ(own.tunnel->destinations,
            (std::vector<Destination>{{"127.0.0.1", 6443}, {"::1", 6443}}));
  EXPECT_EQ(own.tunnel->max_connections, 16u);
  EXPECT_EQ(own.tunnel->idle_timeout, 10min);
}

TEST(ConfigLoader, CloseWhenTunnelledClosesTheManagedPortsTheTunnelServes) {
  EXPECT_FALSE(parse_ok("").firewall.close_when_tunnelled);
  const Config c = parse_ok(
      "controlPlane: {}\nfirewall: {closeWhenTunnelled: true}\ntunnel:\n"
      "  server: https://k.example:8091\n"
      "  destinations: [\"127.0.0.1:6443\", \"[::1]:6443\", \"127.0.0.1:10250\"]\n");
  EXPECT_TRUE(c.firewall.close_when_tunnelled);
  EXPECT_EQ(tunnelled_ports(c), (std::vector<std::uint16_t>{6443}))
      << "once each, and only the managed ones (10250 is not)";
  EXPECT_TRUE(tunnelled_ports(parse_ok("")).empty());
}

TEST(ConfigLoader, EmptyMetricsListenSwitchesMetricsOff) {
  EXPECT_EQ(parse_ok("metrics: {listen: \"\"}").metrics.listen, "");
  EXPECT_EQ(parse_ok("metrics:\n  listen:\n").metrics.listen, "");
}

TEST(ConfigLoader, ShippedExamplePasses) {
  std::ifstream in(TETHERD_SOURCE_DIR "/packaging/tetherd.yaml");
  ASSERT_TRUE(in) << "packaging/tetherd.yaml missing";
  std::stringstream text;
  text << in.rdbuf();
  const Config c = parse_ok(text.str());
  EXPECT_TRUE(c.cluster.has_value());
  EXPECT_TRUE(c.linkerd.has_value());
}

struct BadCase {
  const char* name;
  const char* yaml;
  std::vector<std::string> errors;
  friend std::ostream& operator<<(std::ostream& o, const BadCase& c) { return o << c.name; }
};

class ConfigLoaderRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigLoaderRejects, WithExactMessages) {
  EXPECT_EQ(errors_of(GetParam().yaml), GetParam().errors);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigLoaderRejects,
    ::testing::Values(
        BadCase{"SyntaxError",
                "firewall: [\n",
                {"t.yaml:2:1: YAML syntax: end of sequence flow not found"}},
        BadCase{"NotAMapping", "- a\n- b\n", {"t.yaml:1:1: expected a mapping of keys"}},
        BadCase{"TwoDocuments",
                "a: 1\n---\nb: 2\n",
                {"t.yaml:2:1: expected one YAML document; another begins here (a '---', or text "
                 "after the document that YAML cannot place)"}},
        // yaml-cpp's LoadAll loops for ever on these (found by fuzzing).
        BadCase{"StrayComma",
                ",..\n",
                {"t.yaml:1:1: expected one YAML document; another begins here (a '---', or text "
                 "after the document that YAML cannot place)"}},
        BadCase{"StrayCommaAfterDocumentEnd",
                "---\n...\n,..\n",
                {"t.yaml:3:1: expected one YAML document; another begins here (a '---', or text "
                 "after the document that YAML cannot place)"}},
        BadCase{"UnknownTopLevelKey",
                "firewal: {}\n",
                {"t.yaml:1:1: unknown key \"firewal\"; did you mean \"firewall\"?"}},
        BadCase{"UnknownNestedKey",
                "firewall:\n  alowedSources: []\n",
                {"t.yaml:2:3: firewall: unknown key \"alowedSources\""}},
        BadCase{"DuplicateKey",
                "firewall:\n  backend: ufw\n  backend: none\n",
                {"t.yaml:3:3: firewall: duplicate key \"backend\""}},
        BadCase{"SectionNotAMapping",
                "firewall: nftables\n",
                {"t.yaml:1:11: firewall: expected a mapping of keys"}},
        BadCase{"WrongTypeForString",
                "node:\n  name: [a, b]\n",
                {"t.yaml:2:9: node.name: expected a string"}},
        BadCase{"BadNodeName",
                "node: {name: My_Laptop}\n",
                {"t.yaml:1:14: node.name: \"My_Laptop\" must be a DNS-1123 subdomain (lowercase "
                 "letters, digits, '-' and '.', at most 245 characters)"}},
        BadCase{"BadDuration",
                "health:\n  interval: 30\n",
                {"t.yaml:2:13: health.interval: invalid duration \"30\": missing unit (ns, us, "
                 "ms, s, m, h), e.g. 10s"}},
        BadCase{"DurationOutOfRange",
                "health:\n  interval: 100ms\n",
                {"t.yaml:2:13: health.interval: must be between 1s and 1h, got 100ms"}},
        BadCase{"LeaseNotLongerThanHeartbeat",
                "controlPlane:\n  heartbeatInterval: 30s\n  leaseDuration: 30s\n",
                {"t.yaml:3:18: controlPlane.leaseDuration: must be longer than heartbeatInterval "
                 "(30s <= 30s)"}},
        BadCase{"LeaseFractionalSeconds",
                "controlPlane:\n  leaseDuration: 40500ms\n",
                {"t.yaml:2:18: controlPlane.leaseDuration: must be a whole number of seconds"}},
        BadCase{"BadNamespace",
                "controlPlane:\n  namespace: Tetherd\n",
                {"t.yaml:2:14: controlPlane.namespace: not a valid namespace name (lowercase "
                 "letters, digits and '-', at most 63): \"Tetherd\""}},
        BadCase{"BadLinkerdNamespace",
                "linkerd:\n  namespace: -mesh\n",
                {"t.yaml:2:14: linkerd.namespace: not a valid namespace name (lowercase "
                 "letters, digits and '-', at most 63): \"-mesh\""}},
        BadCase{"RelativeKubeconfig",
                "controlPlane:\n  kubeconfig: cp.kubeconfig\n",
                {"t.yaml:2:15: controlPlane.kubeconfig: expected an absolute path, got "
                 "\"cp.kubeconfig\""}},
        BadCase{"RelativeBootstrapKubeconfig",
                "controlPlane:\n  bootstrapKubeconfig: bootstrap.kubeconfig\n",
                {"t.yaml:2:24: controlPlane.bootstrapKubeconfig: expected an absolute path, got "
                 "\"bootstrap.kubeconfig\""}},
        BadCase{"BootstrapKubeconfigNotAString",
                "controlPlane:\n  bootstrapKubeconfig: [/etc/tetherd/b.kubeconfig]\n",
                {"t.yaml:2:24: controlPlane.bootstrapKubeconfig: expected an absolute path"}},
        BadCase{"HealNotABoolean",
                "linkerd:\n  healExpiredProxies: yes please\n",
                {"t.yaml:2:23: linkerd.healExpiredProxies: expected one of true | false, got "
                 "\"yes please\""}},
        BadCase{"BadBackend",
                "firewall: {backend: iptables}\n",
                {"t.yaml:1:21: firewall.backend: expected one of nftables | ufw | none, got "
                 "\"iptables\""}},
        BadCase{"BadVerdict",
                "firewall: {verdict: accept}\n",
                {"t.yaml:1:21: firewall.verdict: expected one of drop | reject, got \"accept\""}},
        BadCase{"BadOnStop",
                "firewall: {onStop: flush}\n",
                {"t.yaml:1:20: firewall.onStop: expected one of keep | remove, got \"flush\""}},
        BadCase{"BadPorts",
                "firewall:\n  ports: [0, 65536, https, 4143, 4143]\n",
                {"t.yaml:2:11: firewall.ports[0]: expected a port (1-65535), got \"0\"",
                 "t.yaml:2:14: firewall.ports[1]: expected a port (1-65535), got \"65536\"",
                 "t.yaml:2:21: firewall.ports[2]: expected a port (1-65535), got \"https\"",
                 "t.yaml:2:34: firewall.ports[4]: port 4143 is listed twice"}},
        BadCase{"EmptyPorts",
                "firewall:\n  ports: []\n",
                {"t.yaml:2:10: firewall.ports: expected a non-empty list of ports, e.g. [6443, "
                 "4143]"}},
        BadCase{"BadCidrs",
                "firewall:\n  allow:\n    - 203.0.113.0/24\n    - 10.0.0.0/33\n    - x\n",
                {"t.yaml:4:7: firewall.allow[1]: invalid CIDR \"10.0.0.0/33\": prefix length must "
                 "be 0-32",
                 "t.yaml:5:7: firewall.allow[2]: invalid CIDR \"x\": not an IP address"}},
        BadCase{"CidrListNotAList",
                "firewall:\n  alwaysAllow: 10.42.0.0/16\n",
                {"t.yaml:2:16: firewall.alwaysAllow: expected a list of CIDRs, e.g. "
                 "[203.0.113.0/24]"}},
        BadCase{"MaxSourcesOutOfRange",
                "firewall: {maxSources: 100000}\n",
                {"t.yaml:1:24: firewall.maxSources: expected a number of sources (1-65536), got "
                 "\"100000\""}},
        BadCase{"MinPrefixLengthOutOfRange",
                "firewall:\n  minPrefixLength: {ipv4: 33, ipv6: 129, ipv5: 1}\n",
                {"t.yaml:2:27: firewall.minPrefixLength.ipv4: expected a prefix length (0-32), "
                 "got \"33\"",
                 "t.yaml:2:37: firewall.minPrefixLength.ipv6: expected a prefix length (0-128), "
                 "got \"129\"",
                 "t.yaml:2:42: firewall.minPrefixLength: unknown key \"ipv5\"; did you mean "
                 "\"ipv4\"?"}},
        BadCase{
            "CloudAddressHintOutOfRange",
            "firewall:\n  cloudAddressHint: {quietAfter: 25h, attempts: 0, over: 10m, after: 1}\n",
            {"t.yaml:2:34: firewall.cloudAddressHint.quietAfter: must be between 1s and 24h, "
             "got 25h",
             "t.yaml:2:49: firewall.cloudAddressHint.attempts: expected a number of attempts "
             "(1-100000), got \"0\"",
             "t.yaml:2:58: firewall.cloudAddressHint.over: must be between 0s and 9m, got 10m",
             "t.yaml:2:63: firewall.cloudAddressHint: unknown key \"after\""}},
        BadCase{"CloudAddressHintNotWholeSeconds",
                "firewall:\n  cloudAddressHint: {quietAfter: 1500ms, over: 500ms}\n",
                {"t.yaml:2:34: firewall.cloudAddressHint.quietAfter: must be a whole number of "
                 "seconds",
                 "t.yaml:2:48: firewall.cloudAddressHint.over: must be a whole number of seconds"}},
        BadCase{"StaticSourcesOverMax",
                "firewall:\n  maxSources: 2\n  allow: [192.0.2.1, 192.0.2.2]\n",
                {"t.yaml:3:10: firewall.allow: allow and alwaysAllow list 4 sources, more than "
                 "maxSources (2)"}},
        BadCase{"RotateBeforeNotShorterThanValidity",
                "linkerd:\n  rotateBefore: 720h\n  issuerValidity: 720h\n",
                {"t.yaml:2:17: linkerd.rotateBefore: must be shorter than issuerValidity (720h >= "
                 "720h), or every new issuer would be due for rotation at once"}},
        BadCase{"BadGatewayUrl",
                "health: {linkerdGateway: \"127.0.0.1:4191\"}\n",
                {"t.yaml:1:26: health.linkerdGateway: expected an http:// URL, got "
                 "\"127.0.0.1:4191\""}},
        BadCase{"HttpsGatewayUrl",
                "health: {linkerdGateway: \"https://127.0.0.1:4191/ready\"}\n",
                {"t.yaml:1:26: health.linkerdGateway: expected an http:// URL, got "
                 "\"https://127.0.0.1:4191/ready\""}},
        BadCase{"ThresholdOutOfRange",
                "health: {threshold: 0}\n",
                {"t.yaml:1:21: health.threshold: expected a number of probe rounds (1-10), got "
                 "\"0\""}},
        BadCase{"BadMetricsListen",
                "metrics: {listen: \"0.0.0.0:99999\"}\n",
                {"t.yaml:1:19: metrics.listen: expected ADDRESS:PORT such as 127.0.0.1:9477 or "
                 "[::1]:9477 (empty: off), got \"0.0.0.0:99999\""}},
        BadCase{"MetricsListenHostName",
                "metrics: {listen: \"localhost:9477\"}\n",
                {"t.yaml:1:19: metrics.listen: expected ADDRESS:PORT such as 127.0.0.1:9477 or "
                 "[::1]:9477 (empty: off), got \"localhost:9477\""}},
        BadCase{"NullValueBlamesItsKey",
                "state:\n  dir:\n",
                {"t.yaml:2:3: state.dir: expected an absolute path"}},
        BadCase{"TunnelWithoutServerOrCredentials",
                "tunnel:\n  agentID: a\n",
                {"t.yaml:2:3: tunnel.server: required: the konnectivity servers' agent port, e.g. "
                 "https://konnectivity.example.net:8091",
                 "t.yaml:2:3: tunnel.kubeconfig: required without controlPlane: the kubeconfig "
                 "whose CA and client certificate the tunnel presents to the konnectivity "
                 "servers"}},
        BadCase{"CloseWhenTunnelledWithoutATunnel",
                "firewall:\n  closeWhenTunnelled: true\n",
                {"t.yaml:2:3: firewall.closeWhenTunnelled: needs a tunnel section: the ports it "
                 "closes are those the tunnel serves"}},
        BadCase{"CloseWhenTunnelledWithBackendNone",
                "controlPlane: {}\nfirewall:\n  backend: none\n  closeWhenTunnelled: true\n"
                "tunnel:\n  server: https://k:8091\n",
                {"t.yaml:3:3: firewall.closeWhenTunnelled: firewall.backend none filters "
                 "nothing, so there is nothing to close"}},
        BadCase{"CloseWhenTunnelledWithNothingToClose",
                "controlPlane: {}\nfirewall:\n  closeWhenTunnelled: true\ntunnel:\n"
                "  server: https://k:8091\n  destinations: [\"127.0.0.1:10250\"]\n",
                {"t.yaml:3:3: firewall.closeWhenTunnelled: none of the tunnel's destinations is "
                 "on a port of firewall.ports, so there is nothing to close"}},
        BadCase{"TunnelBadValues",
                "controlPlane: {}\ntunnel:\n  server: http://k:8091\n  destinations: "
                "[\"127.0.0.1\", \"::1:6443\", \"127.0.0.1:6443\", \"127.0.0.1:6443\"]\n"
                "  maxConnections: 0\n  idleTimeout: 10s\n",
                {"t.yaml:3:11: tunnel.server: expected https://HOST:PORT (the konnectivity "
                 "servers' agent port, e.g. https://konnectivity.example.net:8091), got "
                 "\"http://k:8091\"",
                 "t.yaml:4:18: tunnel.destinations[0]: \"127.0.0.1\": not host:port",
                 "t.yaml:4:31: tunnel.destinations[1]: \"::1:6443\": an IPv6 address is written "
                 "in brackets, [::1]:6443",
                 "t.yaml:4:61: tunnel.destinations[3]: 127.0.0.1:6443 is listed twice",
                 "t.yaml:5:19: tunnel.maxConnections: expected a number of connections "
                 "(1-4096), got \"0\"",
                 "t.yaml:6:16: tunnel.idleTimeout: must be between 1m and 24h, got 10s"}}),
    [](const auto& info) { return info.param.name; });

TEST(ConfigLoader, ReportsEveryProblemAtOnceInDocumentOrder) {
  const auto errors = errors_of(R"(extra: 1
firewall:
  backend: iptables
  ports: [70000]
node: {name: "Bad Name"}
)");
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].substr(0, 11), "t.yaml:1:1:");
  EXPECT_EQ(errors[1].substr(0, 12), "t.yaml:3:12:");
  EXPECT_EQ(errors[2].substr(0, 11), "t.yaml:4:11");
  EXPECT_EQ(errors[3].substr(0, 12), "t.yaml:5:14:");
}

TEST(ConfigLoader, UnusableHostNameAsksForNodeName) {
  EXPECT_EQ(errors_of("", LoadOptions{"My_Host"}),
            (std::vector<std::string>{
                "t.yaml: node.name: not set, and the host name \"My_Host\" cannot be used: a node "
                "name must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at "
                "most 245 characters)"}));
  EXPECT_EQ(parse_ok("node: {name: fine}").node_name, "fine");
}

TEST(ConfigLoader, MissingFileIsAnErrorWithoutPosition) {
  auto got = load_config_file("/nonexistent/tetherd.yaml", kOptions);
  ASSERT_TRUE(std::holds_alternative<ConfigErrors>(got));
  EXPECT_EQ(std::get<ConfigErrors>(got).at(0).format("/nonexistent/tetherd.yaml"),
            "/nonexistent/tetherd.yaml: cannot read the file: No such file or directory");
}

TEST(ConfigLoader, OversizedFileIsRefused) {
  char path[] = "/tmp/tetherd-config-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string big((1 << 20) + 1, '#');
  ASSERT_EQ(write(fd, big.data(), big.size()), static_cast<ssize_t>(big.size()));
  close(fd);
  auto got = load_config_file(path, kOptions);
  unlink(path);
  ASSERT_TRUE(std::holds_alternative<ConfigErrors>(got));
  EXPECT_EQ(std::get<ConfigErrors>(got).at(0).message,
            "the file is larger than 1 MiB; is this the right file?");
}

}  // namespace
}  // namespace tetherd
