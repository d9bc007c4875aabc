#include "agent/core/edge_node.h"

#include <cstdint>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace tetherd {
namespace {

namespace json = boost::json;

json::object object_from(std::string_view text) {
  return json::parse(text).as_object();
}

constexpr std::string_view kFull = R"({
  "apiVersion": "tetherd.io/v1alpha1", "kind": "EdgeNode",
  "metadata": {"name": "desktop", "namespace": "tetherd-system", "generation": 7,
               "uid": "6f1c2b9e-0d8a-4a51-9c1e-6f3e0b1d2c4a", "resourceVersion": "4711",
               "creationTimestamp": "2026-11-21T09:30:05Z", "labels": {"a": "b"}},
  "spec": {"firewall": {"allowedSources": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"],
                        "ports": [6443, 4143]},
           "linkerd": {"rotate": "2026-11-21"}},
  "status": {"observedGeneration": 6}
})";

TEST(EdgeNodeTest, DecodesAFullObject) {
  auto node = decode_edge_node(object_from(kFull));
  ASSERT_TRUE(node) << node.error().message;
  EXPECT_EQ(node->name, "desktop");
  EXPECT_EQ(node->namespace_, "tetherd-system");
  EXPECT_EQ(node->uid, "6f1c2b9e-0d8a-4a51-9c1e-6f3e0b1d2c4a");
  EXPECT_EQ(node->resource_version, "4711");
  EXPECT_EQ(node->generation, 7);
  EXPECT_EQ(node->firewall.sources,
            (std::vector<std::string>{"203.0.113.0/24", "2001:db8::/32", "198.51.100.7"}));
  EXPECT_EQ(node->firewall.ports, (std::vector<std::uint16_t>{6443, 4143}));
  EXPECT_EQ(node->rotate, "2026-11-21");
}

TEST(EdgeNodeTest, ListItemsWithoutKindOrApiVersionDecode) {
  auto node = decode_edge_node(object_from(
      R"({"metadata":{"name":"a"},"spec":{"firewall":{"allowedSources":["::1","fe80::/10"]}}})"));
  ASSERT_TRUE(node) << node.error().message;
  EXPECT_EQ(node->name, "a");
  EXPECT_EQ(node->firewall.sources, (std::vector<std::string>{"::1", "fe80::/10"}));
  EXPECT_TRUE(node->firewall.ports.empty());
  EXPECT_EQ(node->generation, 0);
  EXPECT_EQ(node->resource_version, "");
}

TEST(EdgeNodeTest, AbsentAndNullPiecesMeanNoSources) {
  const std::vector<std::string_view> cases = {
      R"({"metadata":{"name":"a"}})",
      R"({"metadata":{"name":"a"},"spec":null})",
      R"({"metadata":{"name":"a"},"spec":{}})",
      R"({"metadata":{"name":"a"},"spec":{"firewall":null,"linkerd":null}})",
      R"({"metadata":{"name":"a"},"spec":{"firewall":{}}})",
      R"({"metadata":{"name":"a"},"spec":{"firewall":{"allowedSources":null,"ports":null}}})",
      R"({"metadata":{"name":"a"},"spec":{"firewall":{"allowedSources":[]}}})",
      R"({"metadata":{"name":"a"},"spec":{"linkerd":{"rotate":null}}})",
      R"({"kind":null,"apiVersion":null,"metadata":{"name":"a","generation":null,)"
      R"("namespace":null,"uid":null,"resourceVersion":null}})",
  };
  for (auto text : cases) {
    SCOPED_TRACE(text);
    auto node = decode_edge_node(object_from(text));
    ASSERT_TRUE(node) << node.error().message;
    EXPECT_EQ(node->name, "a");
    EXPECT_TRUE(node->firewall.sources.empty());
    EXPECT_TRUE(node->firewall.ports.empty());
    EXPECT_EQ(node->rotate, "");
    EXPECT_EQ(node->generation, 0);
  }
}

TEST(EdgeNodeTest, TheDecoderLeavesCidrSyntaxToTheFirewall) {
  // Not a CIDR, but a string of a sane size: firewall::validate refuses it
  // later, with the node's own limits.
  auto node = decode_edge_node(
      object_from(R"({"metadata":{"name":"a"},"spec":{"firewall":{"allowedSources":["nope"]}}})"));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->firewall.sources, std::vector<std::string>{"nope"});
}

struct ErrorCase {
  std::string_view object;
  std::string_view message;
};

TEST(EdgeNodeTest, ErrorsNameTheJsonPath) {
  const std::vector<ErrorCase> cases = {
      {R"({"kind":"Lease","metadata":{"name":"a"}})", R"(kind: expected "EdgeNode", got "Lease")"},
      {R"({"kind":7,"metadata":{"name":"a"}})", "kind: expected a string, got a number"},
      {R"({"apiVersion":"tetherd.io/v1","metadata":{"name":"a"}})",
       R"(apiVersion: expected "tetherd.io/v1alpha1", got "tetherd.io/v1")"},
      {R"({})", "metadata.name: missing"},
      {R"({"metadata":null})", "metadata.name: missing"},
      {R"({"metadata":"a"})", "metadata: expected an object, got a string"},
      {R"({"metadata":{}})", "metadata.name: missing"},
      {R"({"metadata":{"name":null}})", "metadata.name: missing"},
      {R"({"metadata":{"name":""}})", "metadata.name: empty"},
      {R"({"metadata":{"name":["a"]}})", "metadata.name: expected a string, got an array"},
      {R"({"metadata":{"name":"a","namespace":1}})",
       "metadata.namespace: expected a string, got a number"},
      {R"({"metadata":{"name":"a","uid":true}})", "metadata.uid: expected a string, got a boolean"},
      {R"({"metadata":{"name":"a","resourceVersion":12}})",
       "metadata.resourceVersion: expected a string, got a number"},
      {R"({"metadata":{"name":"a","generation":-1}})",
       "metadata.generation: expected a non-negative integer, got -1"},
      {R"({"metadata":{"name":"a","generation":"7"}})",
       "metadata.generation: expected an integer, got a string"},
      {R"({"metadata":{"name":"a","generation":1.5}})",
       "metadata.generation: expected an integer, got a number with a fraction"},
      {R"({"metadata":{"name":"a","generation":18446744073709551615}})",
       "metadata.generation: 18446744073709551615 is out of range"},
      {R"({"metadata":{"name":"a"},"spec":[]})", "spec: expected an object, got an array"},
      {R"({"metadata":{"name":"a"},"spec":{"firewall":"all"}})",
       "spec.firewall: expected an object, got a string"},
      {R"({"metadata":{"name":"a"},"spec":{"firewall":{"allowedSources":"10.0.0.0/8"}}})",
       "spec.firewall.allowedSources: expected an array, got a string"},
      {R"({"metadata":{"name":"a"},"spec":{"firewall":{"allowedSources":["a","b","c",4]}}})",
       "spec.firewall.allowedSources[3]: expected a string, got a number"},
      {R"({"metadata":{"name":"a"},"spec":{"firewall":{"allowedSources":[null]}}})",
       "spec.firewall.allowedSources[0]: expected a string, got null"},
      {R"({"metadata":{"name":"a"},"spec":{"firewall":{"ports":443}}})",
       "spec.firewall.ports: expected an array, got a number"},
      {R"({"metadata":{"name":"a"},"spec":{"firewall":{"ports":[443,"80"]}}})",
       "spec.firewall.ports[1]: expected an integer, got a string"},
      {R"({"metadata":{"name":"a"},"spec":{"firewall":{"ports":[443.5]}}})",
       "spec.firewall.ports[0]: expected an integer, got a number with a fraction"},
      {R"({"metadata":{"name":"a"},"spec":{"firewall":{"ports":[0]}}})",
       "spec.firewall.ports[0]: 0 is not a port (1..65535)"},
      {R"({"metadata":{"name":"a"},"spec":{"firewall":{"ports":[6443,65536]}}})",
       "spec.firewall.ports[1]: 65536 is not a port (1..65535)"},
      {R"({"metadata":{"name":"a"},"spec":{"firewall":{"ports":[-443]}}})",
       "spec.firewall.ports[0]: -443 is not a port (1..65535)"},
      {R"({"metadata":{"name":"a"},"spec":{"linkerd":[]}})",
       "spec.linkerd: expected an object, got an array"},
      {R"({"metadata":{"name":"a"},"spec":{"linkerd":{"rotate":1}}})",
       "spec.linkerd.rotate: expected a string, got a number"},
      {R"({"metadata":{"name":"a"},"spec":{"linkerd":{"rotate":{}}}})",
       "spec.linkerd.rotate: expected a string, got an object"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.object);
    auto node = decode_edge_node(object_from(c.object));
    ASSERT_FALSE(node);
    EXPECT_EQ(node.error().message, c.message);
  }
}

json::object with_sources(json::array sources) {
  json::object o = object_from(R"({"metadata":{"name":"a"},"spec":{"firewall":{}}})");
  o["spec"].as_object()["firewall"].as_object()["allowedSources"] = std::move(sources);
  return o;
}

TEST(EdgeNodeTest, DecodesAtMostTheBoundNumberOfSources) {
  json::array at_bound;
  at_bound.resize(kMaxAllowedSourcesDecoded, json::string("10.0.0.1"));
  auto node = decode_edge_node(with_sources(at_bound));
  ASSERT_TRUE(node) << node.error().message;
  EXPECT_EQ(node->firewall.sources.size(), kMaxAllowedSourcesDecoded);

  at_bound.emplace_back("10.0.0.2");
  node = decode_edge_node(with_sources(std::move(at_bound)));
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().message,
            "spec.firewall.allowedSources: too many entries (65537, at most 65536)");
}

TEST(EdgeNodeTest, RefusesOverlongStrings) {
  auto node = decode_edge_node(with_sources({"10.0.0.1", std::string(kMaxSourceBytes, '1')}));
  ASSERT_TRUE(node) << node.error().message;

  node = decode_edge_node(with_sources({"10.0.0.1", std::string(kMaxSourceBytes + 1, '1')}));
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().message,
            "spec.firewall.allowedSources[1]: too long (65 bytes, at most 64)");

  json::object o = object_from(R"({"metadata":{},"spec":{"linkerd":{}}})");
  o["metadata"].as_object()["name"] = std::string(kMaxNameBytes + 1, 'n');
  node = decode_edge_node(o);
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().message, "metadata.name: too long (254 bytes, at most 253)");

  o["metadata"].as_object()["name"] = "a";
  o["spec"].as_object()["linkerd"].as_object()["rotate"] = std::string(kMaxRotateBytes + 1, 'r');
  node = decode_edge_node(o);
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().message, "spec.linkerd.rotate: too long (254 bytes, at most 253)");
}

TEST(EdgeNodeTest, RefusesTooManyPorts) {
  json::object o = object_from(R"({"metadata":{"name":"a"},"spec":{"firewall":{}}})");
  json::array ports;
  ports.resize(kMaxPortsDecoded + 1, 443);
  o["spec"].as_object()["firewall"].as_object()["ports"] = std::move(ports);
  auto node = decode_edge_node(o);
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().message, "spec.firewall.ports: too many entries (1025, at most 1024)");
}

TEST(EdgeNodeTest, AWrongKindIsQuotedPrintablyAndShort) {
  json::object o = object_from(R"({"metadata":{"name":"a"}})");
  o["kind"] = "Edge\nNode" + std::string(200, 'x');
  auto node = decode_edge_node(o);
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().message,
            R"(kind: expected "EdgeNode", got "Edge?Node)" + std::string(55, 'x') + R"(...")");
}

TEST(EdgeNodeTest, DecodesTheLinkerdReferences) {
  auto node = decode_edge_node(object_from(R"({"metadata":{"name":"a"},"spec":{"linkerd":{
      "issuerSecretRef":{"name":"linkerd-issuer-desktop"},
      "trustBundleRef":{"name":"linkerd-trust","key":"bundle.pem","rotationFinishing":true}}}})"));
  ASSERT_TRUE(node) << node.error().message;
  EXPECT_EQ(node->linkerd.issuer_secret, "linkerd-issuer-desktop");
  EXPECT_EQ(node->linkerd.bundle_config_map, "linkerd-trust");
  EXPECT_EQ(node->linkerd.bundle_key, "bundle.pem");
  EXPECT_TRUE(node->linkerd.rotation_finishing);

  // No key: trust-manager's and linkerd's own, ca-bundle.crt.
  node = decode_edge_node(object_from(
      R"({"metadata":{"name":"a"},"spec":{"linkerd":{"trustBundleRef":{"name":"t"}}}})"));
  ASSERT_TRUE(node) << node.error().message;
  EXPECT_EQ(node->linkerd.bundle_key, "ca-bundle.crt");
  EXPECT_FALSE(node->linkerd.rotation_finishing);
  EXPECT_EQ(node->linkerd.issuer_secret, "");

  node = decode_edge_node(object_from(R"({"metadata":{"name":"a"},"spec":{"linkerd":{}}})"));
  ASSERT_TRUE(node) << node.error().message;
  EXPECT_EQ(node->linkerd, LinkerdRefs{});
}

TEST(EdgeNodeTest, AReferenceThatIsNotANameIsRefused) {
  // Both end up in a request's path: nothing that could climb out of it.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"issuerSecretRef":{"name":"../../secrets/x"}})",
       R"(spec.linkerd.issuerSecretRef.name: "../../secrets/x" is not a name (lower-case letters, digits, '-', '.'))"},
      {R"({"issuerSecretRef":{"name":".."}})",
       R"(spec.linkerd.issuerSecretRef.name: ".." is not a name)"},
      {R"({"issuerSecretRef":{}})", "spec.linkerd.issuerSecretRef.name: missing"},
      {R"({"issuerSecretRef":"x"})",
       "spec.linkerd.issuerSecretRef: expected an object, got a string"},
      {R"({"trustBundleRef":{"name":"Upper"}})",
       R"(spec.linkerd.trustBundleRef.name: "Upper" is not a name (lower-case letters, digits, '-', '.'))"},
      {R"({"trustBundleRef":{"name":"t","key":"a/b"}})",
       R"(spec.linkerd.trustBundleRef.key: "a/b" is not a ConfigMap key)"},
      {R"({"trustBundleRef":{"name":"t","rotationFinishing":"yes"}})",
       "spec.linkerd.trustBundleRef.rotationFinishing: expected a boolean, got a string"},
  };
  for (const auto& [linkerd, message] : cases) {
    auto node = decode_edge_node(
        object_from(R"({"metadata":{"name":"a"},"spec":{"linkerd":)" + linkerd + "}}"));
    ASSERT_FALSE(node) << linkerd;
    EXPECT_EQ(node.error().message, message);
  }
}

}  // namespace
}  // namespace tetherd
