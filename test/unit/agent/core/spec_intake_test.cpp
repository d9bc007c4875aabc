// The session's decision on an EdgeNode it hears of (core/spec_intake.h),
// as a table: the object, what was acted on before, and the firewall
// keeper's view, against the action and what it carries.

#include "agent/core/spec_intake.h"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace tetherd {
namespace {

namespace json = boost::json;
using A = SpecAction;
using Sources = firewall::DesiredSources;

const Sources kOld{{"198.51.100.0/24"}, {}};
const Sources kNew{{"203.0.113.0/24"}, {}};

json::object edge_node(const std::string& spec, std::int64_t generation = 7) {
  return json::parse(R"({"metadata":{"name":"node-a","namespace":"edge","generation":)" +
                     std::to_string(generation) + R"(},"spec":)" + spec + "}")
      .as_object();
}

constexpr char kNewSpec[] = R"({"firewall":{"allowedSources":["203.0.113.0/24"]}})";
constexpr char kNewSpecRotated[] =
    R"({"firewall":{"allowedSources":["203.0.113.0/24"]},"linkerd":{"rotate":"r2"}})";
constexpr char kOldSpec[] = R"({"firewall":{"allowedSources":["198.51.100.0/24"]}})";

struct Row {
  const char* name;
  std::string spec;                 // the EdgeNode's spec, JSON
  std::optional<std::string> last;  // the spec last acted on, JSON
  bool apply_failed;
  std::string rotate;  // last seen
  Sources wanted, in_force;
  bool busy;
  bool fits;
  // expected
  A action;
  bool rotate_changed;
  std::optional<std::int64_t> generation;
  std::string error_contains;
};

class SpecIntakeTable : public ::testing::TestWithParam<Row> {};

TEST_P(SpecIntakeTable, Decides) {
  const Row& r = GetParam();
  const json::object object = edge_node(r.spec);
  std::optional<json::value> last;
  if (r.last) last = json::parse(*r.last);
  int fits_asked = 0;
  const SpecDecision d = decide_spec({.object = object,
                                      .last_spec = last ? &*last : nullptr,
                                      .apply_failed = r.apply_failed,
                                      .rotate = r.rotate,
                                      .wanted = r.wanted,
                                      .in_force = r.in_force,
                                      .busy = r.busy,
                                      .fits = [&](const Sources&) -> Result<void> {
                                        ++fits_asked;
                                        if (r.fits) return {};
                                        return make_error("more than firewall.maxSources (1)");
                                      }});
  EXPECT_EQ(to_string(d.action), to_string(r.action));
  EXPECT_EQ(d.rotate_changed, r.rotate_changed);
  EXPECT_EQ(d.generation, r.generation);
  if (r.error_contains.empty()) {
    EXPECT_TRUE(d.error.empty()) << d.error;
  } else {
    EXPECT_NE(d.error.find(r.error_contains), std::string::npos) << d.error;
  }
  const bool decoded = r.action != A::kNothing && r.action != A::kInvalid;
  EXPECT_EQ(d.spec.has_value(), decoded);
  // The node's limits are asked only of a firewall that would be applied.
  EXPECT_EQ(fits_asked > 0, r.action == A::kApply || r.action == A::kRefused);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, SpecIntakeTable,
    ::testing::Values(Row{"a_new_spec_is_applied", kNewSpec, kOldSpec, false, "", kOld, kOld, false,
                          true, A::kApply, false, 7, ""},
                      Row{"the_first_spec_is_applied", kNewSpec, std::nullopt, false, "", kOld,
                          kOld, false, true, A::kApply, false, 7, ""},
                      Row{"our_status_writes_echo_is_nothing", kNewSpec, kNewSpec, false, "", kNew,
                          kNew, false, true, A::kNothing, false, std::nullopt, ""},
                      Row{"a_spec_whose_apply_failed_is_tried_again", kNewSpec, kNewSpec, true, "",
                          kOld, kOld, false, true, A::kApply, false, 7, ""},
                      Row{"the_saved_state_applied_at_boot_is_in_force", kNewSpec, std::nullopt,
                          false, "", kNew, kNew, false, true, A::kInForce, false, 7, ""},
                      Row{"an_apply_in_flight_for_the_same_sources_is_joined", kNewSpec, kOldSpec,
                          false, "", kNew, kOld, true, true, A::kJoin, false, 7, ""},
                      Row{"busy_with_something_else_but_these_are_in_force", kNewSpec, kOldSpec,
                          false, "", kNew, kNew, true, true, A::kInForce, false, 7, ""},
                      Row{"the_nodes_limits_refuse_it", kNewSpec, kOldSpec, false, "", kOld, kOld,
                          false, false, A::kRefused, false, 7, "maxSources"},
                      Row{"a_new_rotate_token_with_an_unchanged_firewall", kNewSpecRotated,
                          kNewSpec, false, "r1", kNew, kNew, false, true, A::kInForce, true, 7, ""},
                      Row{"a_new_rotate_token_in_a_refused_spec_still_counts", kNewSpecRotated,
                          kOldSpec, false, "r1", kOld, kOld, false, false, A::kRefused, true, 7,
                          "maxSources"},
                      Row{"an_undecodable_spec_is_invalid_with_its_path",
                          R"({"firewall":{"allowedSources":3}})", kOldSpec, false, "r1", kOld, kOld,
                          false, true, A::kInvalid, false, 7, "spec.firewall.allowedSources"},
                      Row{"an_absent_firewall_asks_for_no_sources", "null", kOldSpec, false, "",
                          kOld, kOld, false, true, A::kApply, false, 7, ""}),
    [](const ::testing::TestParamInfo<Row>& info) { return std::string(info.param.name); });

TEST(SpecIntake, AnObjectWithoutAUsableGenerationIsInvalidWithoutOne) {
  const json::object object =
      json::parse(R"({"metadata":{"name":"node-a","generation":"seven"},"spec":{}})").as_object();
  const Sources none;
  const SpecDecision d = decide_spec({.object = object,
                                      .last_spec = nullptr,
                                      .apply_failed = false,
                                      .rotate = "",
                                      .wanted = none,
                                      .in_force = none,
                                      .busy = false,
                                      .fits = {}});
  EXPECT_EQ(d.action, A::kInvalid);
  EXPECT_EQ(d.generation, std::nullopt);
  EXPECT_FALSE(d.error.empty());
}

}  // namespace
}  // namespace tetherd
