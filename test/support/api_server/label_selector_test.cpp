// Label selectors as labels.Parse and metav1.LabelSelectorAsSelector have
// them, with their error messages.

#include "test/support/api_server/label_selector.h"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace tetherd::test::apiserver {
namespace {
namespace json = boost::json;

json::object with_labels(const char* labels) {
  return json::parse(std::string(R"({"metadata":{"labels":)") + labels + "}}").as_object();
}

TEST(LabelSelector, MatchesAsKubernetesDoes) {
  struct Case {
    const char* selector;
    const char* labels;
    bool matches;
  } cases[] = {
      {"", "{}", true},
      {"a=b", R"({"a":"b"})", true},
      {"a==b", R"({"a":"b"})", true},
      {"a=b", R"({"a":"c"})", false},
      {"a=b", "{}", false},
      {"a!=b", R"({"a":"c"})", true},
      {"a!=b", "{}", true},  // an absent label is not b
      {"a!=b", R"({"a":"b"})", false},
      {"a", R"({"a":""})", true},
      {"a", R"({"b":"a"})", false},
      {"!a", R"({"b":"a"})", true},
      {"!a", R"({"a":"x"})", false},
      {"a in (x,y)", R"({"a":"y"})", true},
      {"a in (x,y)", R"({"a":"z"})", false},
      {"a in (x,y)", "{}", false},
      {"a notin (x)", R"({"a":"y"})", true},
      {"a notin (x)", "{}", true},
      {"a notin (x)", R"({"a":"x"})", false},
      {"a in ()", R"({"a":""})", true},
      {"a=", R"({"a":""})", true},
      {"a>1", R"({"a":"2"})", true},
      {"a<1", R"({"a":"2"})", false},
      {"a>1", R"({"a":"x"})", false},
      {" a = b , c ", R"({"a":"b","c":"d"})", true},  // spaces around anything
      {"a=b,c", R"({"a":"b"})", false},               // comma: and
      {"in in (in),notin", R"({"in":"in","notin":""})", true},
      {"linkerd.io/control-plane-ns", R"({"linkerd.io/control-plane-ns":"linkerd"})", true},
      {"linkerd.io/control-plane-ns", R"({"linkerd.io/proxy-deployment":"web"})", false},
  };
  for (const Case& c : cases) {
    Expected<LabelSelector> parsed = parse_label_selector(c.selector);
    ASSERT_TRUE(parsed.ok()) << c.selector << ": " << status_message(parsed.error());
    EXPECT_EQ(parsed.value().matches(with_labels(c.labels)), c.matches)
        << c.selector << " on " << c.labels;
  }
  EXPECT_FALSE(parse_label_selector("a").value().matches(json::object{}));  // no metadata
}

TEST(LabelSelector, RefusesWhatLabelsParseRefusesWithItsMessage) {
  struct Case {
    const char* selector;
    const char* message;
  } cases[] = {
      {"a=b,", "found '', expected: identifier after ','"},
      {",a", "found ',', expected: !, identifier, or 'end of string'"},
      {"a=b c", "found 'c', expected: ',' or 'end of string'"},
      {"a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"},
      {"a=b=c", "found '=', expected: ',' or 'end of string'"},
      {"a in x", "unable to parse requirement: found 'x' expected: '('"},
      {"a in (x", "unable to parse requirement: found '', expected: ',' or ')'"},
      {"a IN (x)",
       "unable to parse requirement: found 'IN', expected: in, notin, =, ==, !=, gt, lt"},
      {"a=(b)", "unable to parse requirement: found '(', expected: identifier"},
      {"!", "unable to parse requirement: found '', expected: identifier"},
      {"a:",
       "unable to parse requirement: <nil>: Invalid value: \"a:\": name part must consist of "
       "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
       "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
       "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"},
      {"Example.com/a",
       "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a "
       "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
       "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
       "used for validation is "
       "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"},
      {"a=b*",
       "unable to parse requirement: values[0][a]: Invalid value: \"b*\": a valid label must be "
       "an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
       "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
       "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"},
      {"a>x",
       "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' "
       "operators, the value must be an integer"},
  };
  for (const Case& c : cases) {
    Expected<LabelSelector> parsed = parse_label_selector(c.selector);
    ASSERT_FALSE(parsed.ok()) << c.selector;
    EXPECT_EQ(parsed.error().code, 400u);
    EXPECT_EQ(parsed.error().status.at("reason"), "BadRequest");
    EXPECT_EQ(status_message(parsed.error()), c.message) << c.selector;
  }
}

TEST(LabelSelector, FromAMetav1LabelSelector) {
  auto from = [](const char* selector) { return label_selector_from(json::parse(selector)); };
  std::optional<LabelSelector> both =
      from(R"({"matchLabels":{"app":"web"},)"
           R"("matchExpressions":[{"key":"tier","operator":"In","values":["a","b"]},)"
           R"({"key":"canary","operator":"DoesNotExist"}]})");
  ASSERT_TRUE(both);
  EXPECT_TRUE(both->matches(with_labels(R"({"app":"web","tier":"b"})")));
  EXPECT_FALSE(both->matches(with_labels(R"({"app":"web","tier":"c"})")));
  EXPECT_FALSE(both->matches(with_labels(R"({"app":"web","tier":"a","canary":"1"})")));

  ASSERT_TRUE(from("{}"));
  EXPECT_TRUE(from("{}")->requirements.empty());  // everything, which a budget takes as nothing
  EXPECT_FALSE(from("null"));
  EXPECT_FALSE(from(R"({"matchExpressions":[{"key":"a","operator":"Gt","values":["1"]}]})"));
  EXPECT_FALSE(from(R"({"matchExpressions":[{"key":"a","operator":"In","values":[]}]})"));
  EXPECT_FALSE(from(R"({"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]})"));
  EXPECT_FALSE(from(R"({"matchLabels":{"a:":"b"}})"));
}

}  // namespace
}  // namespace tetherd::test::apiserver
