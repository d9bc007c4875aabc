// The Table printer's parts: the JSONPath subset the CRD columns use, the
// durations kube-apiserver prints, and the Accept header that asks for a Table.

#include "test/support/api_server/table.h"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace tetherd::test::apiserver {
namespace {

namespace json = boost::json;

const json::value kNode = json::parse(R"({
  "metadata": {"name": "edge-1"},
  "status": {
    "conditions": [{"type": "Connected", "status": "False"}, {"type": "Ready", "status": "True"}],
    "firewall": {"sources": 3},
    "certificates": [{"name": "linkerd-trust-anchor", "notAfter": "2030-01-01T00:00:00Z"},
                     {"name": "linkerd-identity-issuer", "notAfter": "2027-01-01T00:00:00Z"}]}})");

TEST(JsonPath, FieldsIndicesAndFilters) {
  using V = std::vector<json::value>;
  EXPECT_EQ(jsonpath(kNode, ".metadata.name"), (V{"edge-1"}));
  EXPECT_EQ(jsonpath(kNode, "{.status.firewall.sources}"), (V{3}));
  EXPECT_EQ(jsonpath(kNode, R"(.status.conditions[?(@.type=="Ready")].status)"), (V{"True"}));
  EXPECT_EQ(jsonpath(kNode, R"(.status.conditions[?(@.type!="Ready")].status)"), (V{"False"}));
  EXPECT_EQ(
      jsonpath(kNode, R"(.status.certificates[?(@.name=="linkerd-identity-issuer")].notAfter)"),
      (V{"2027-01-01T00:00:00Z"}));
  EXPECT_EQ(jsonpath(kNode, ".status.conditions[1].type"), (V{"Ready"}));
  EXPECT_EQ(jsonpath(kNode, ".status.conditions[-1].type"), (V{"Ready"}));
  EXPECT_EQ(jsonpath(kNode, ".status.conditions[*].type"), (V{"Connected", "Ready"}));
  EXPECT_EQ(jsonpath(kNode, ".status.missing.field"), V{});
  EXPECT_EQ(jsonpath(kNode, ".status.conditions[?(@.type=="), V{});
}

TEST(HumanDuration, AsKubeApiserverPrintsIt) {
  EXPECT_EQ(human_duration(-5), "<invalid>");
  EXPECT_EQ(human_duration(-1), "0s");
  EXPECT_EQ(human_duration(45), "45s");
  EXPECT_EQ(human_duration(119), "119s");
  EXPECT_EQ(human_duration(300), "5m");
  EXPECT_EQ(human_duration(305), "5m5s");
  EXPECT_EQ(human_duration(3 * 3600), "3h");
  EXPECT_EQ(human_duration(3 * 3600 + 20 * 60), "3h20m");
  EXPECT_EQ(human_duration(30 * 3600), "30h");
  EXPECT_EQ(human_duration(4 * 86400 + 3 * 3600), "4d3h");
  EXPECT_EQ(human_duration(100 * 86400), "100d");
  EXPECT_EQ(human_duration((2 * 365 + 30) * 86400LL), "2y30d");
  EXPECT_EQ(human_duration(9 * 365 * 86400LL), "9y");
}

TEST(WantsTable, AsKubectlGetAsks) {
  EXPECT_TRUE(
      wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;"
                  "as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
  EXPECT_FALSE(wants_table("application/json"));
  EXPECT_FALSE(wants_table("application/json, */*"));
  EXPECT_FALSE(wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
  EXPECT_FALSE(wants_table(""));
}

TEST(TableOf, TheCrdsColumnsAfterName) {
  json::object crd = json::parse(R"({"spec": {"versions": [{"name": "v1alpha1",
      "additionalPrinterColumns": [
        {"name": "Ready", "type": "string",
         "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Sources", "type": "integer", "jsonPath": ".status.firewall.sources"},
        {"name": "Missing", "type": "string", "jsonPath": ".status.nothing"}]}]}})")
                         .as_object();
  const ResourceType* type = find_type("tetherd.io", "v1alpha1", "edgenodes");
  json::object table = table_of(*type, {kNode.as_object()}, "7", crd, "");
  EXPECT_EQ(table.at("kind"), "Table");
  EXPECT_EQ(table.at("apiVersion"), "meta.k8s.io/v1");
  EXPECT_EQ(table.at("columnDefinitions").as_array().size(), 4u);
  EXPECT_EQ(table.at("rows").at(0).at("cells"), json::parse(R"(["edge-1", "True", 3, null])"));
  EXPECT_EQ(table.at("rows").at(0).at("object").at("kind"), "PartialObjectMetadata");

  // Without a CRD: Name and Age.
  json::object plain = table_of(*type, {kNode.as_object()}, "7", std::nullopt, "None");
  EXPECT_EQ(plain.at("columnDefinitions").at(1).at("name"), "Age");
  EXPECT_FALSE(plain.at("rows").at(0).as_object().contains("object"));
}

}  // namespace
}  // namespace tetherd::test::apiserver
