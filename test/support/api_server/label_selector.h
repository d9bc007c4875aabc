#pragma once
// Label selectors as k8s.io/apimachinery/pkg/labels has them: the
// labelSelector of a list or watch (labels.Parse: `a=b`, `a==b`, `a!=b`,
// `a`, `!a`, `a in (x,y)`, `a notin (x)`, `a gt 1` as `a>1`, `a<1`; a comma
// is AND), with its error messages, and a metav1.LabelSelector
// (matchLabels and matchExpressions) as a PodDisruptionBudget's
// spec.selector holds it.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "test/support/api_server/status.h"

namespace tetherd::test::apiserver {

struct LabelRequirement {
  enum class Op { kIn, kNotIn, kExists, kDoesNotExist, kGreaterThan, kLessThan };
  std::string key;
  Op op = Op::kExists;
  std::vector<std::string> values;  // = and == are kIn with one value, != kNotIn

  bool matches(const boost::json::object* labels) const;
};

// Every requirement holds (no requirement: everything matches).
struct LabelSelector {
  std::vector<LabelRequirement> requirements;
  // On the object's metadata.labels.
  bool matches(const boost::json::object& object) const;
};

// A labelSelector query parameter; a 400 Status with labels.Parse's message otherwise.
Expected<LabelSelector> parse_label_selector(std::string_view text);

// metav1.LabelSelectorAsSelector: none for null or an invalid selector,
// which match nothing; {} selects everything.
std::optional<LabelSelector> label_selector_from(const boost::json::value& selector);

}  // namespace tetherd::test::apiserver
