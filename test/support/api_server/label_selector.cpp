#include "test/support/api_server/label_selector.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <map>
#include <set>

namespace tetherd::test::apiserver {
namespace json = boost::json;
namespace {

using Op = LabelRequirement::Op;

// k8s.io/apimachinery/pkg/util/validation's words.
constexpr char kQualifiedNameRule[] =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
constexpr char kLabelValueRule[] =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
constexpr char kSubdomainRule[] =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

bool alphanumeric(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool qualified_name_part(std::string_view text) {
  return !text.empty() && alphanumeric(text.front()) && alphanumeric(text.back()) &&
         std::all_of(text.begin(), text.end(),
                     [](char c) { return alphanumeric(c) || c == '-' || c == '_' || c == '.'; });
}

// [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*
bool dns_subdomain(std::string_view text) {
  auto lower = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  while (true) {
    std::size_t dot = text.find('.');
    std::string_view label = text.substr(0, dot);
    if (label.empty() || !lower(label.front()) || !lower(label.back()) ||
        !std::all_of(label.begin(), label.end(), [&](char c) { return lower(c) || c == '-'; }))
      return false;
    if (dot == std::string_view::npos) return true;
    text = text.substr(dot + 1);
  }
}

// validation.IsQualifiedName: [DNS subdomain "/"] name.
std::vector<std::string> key_errors(std::string_view key) {
  if (std::count(key.begin(), key.end(), '/') > 1)
    return {std::string("a qualified name ") + kQualifiedNameRule +
            " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"};
  std::vector<std::string> errors;
  std::string_view name = key;
  if (std::size_t slash = key.find('/'); slash != std::string_view::npos) {
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (prefix.empty()) errors.push_back("prefix part must be non-empty");
    if (prefix.size() > 253) errors.push_back("prefix part must be no more than 253 characters");
    if (!prefix.empty() && !dns_subdomain(prefix))
      errors.push_back(std::string("prefix part ") + kSubdomainRule);
  }
  if (name.empty()) errors.push_back("name part must be non-empty");
  if (name.size() > 63) errors.push_back("name part must be no more than 63 characters");
  if (!qualified_name_part(name)) errors.push_back(std::string("name part ") + kQualifiedNameRule);
  return errors;
}

// validation.IsValidLabelValue.
std::vector<std::string> value_errors(std::string_view value) {
  std::vector<std::string> errors;
  if (value.size() > 63) errors.push_back("must be no more than 63 characters");
  if (!value.empty() && !qualified_name_part(value)) errors.push_back(kLabelValueRule);
  return errors;
}

// field.Invalid(path, value, detail).Error(), with Go's %q of a plain string.
std::string invalid(std::string_view path, std::string_view value,
                    const std::vector<std::string>& details) {
  std::string out = std::string(path) + ": Invalid value: \"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += "\"";
  for (std::size_t i = 0; i < details.size(); ++i)
    out += (i == 0 ? ": " : "; ") + details[i];
  return out;
}

// strconv.ParseInt(text, 10, 64).
bool integer(std::string_view text, std::int64_t& value) {
  if (text.starts_with('+')) text.remove_prefix(1);
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && error == std::errc{} && end == text.data() + text.size();
}

// labels.NewRequirement's checks, as field errors.
std::vector<std::string> requirement_errors(const LabelRequirement& requirement) {
  std::vector<std::string> errors;
  const std::vector<std::string>& values = requirement.values;
  if (std::vector<std::string> key = key_errors(requirement.key); !key.empty())
    errors.push_back(invalid("key", requirement.key, key));
  switch (requirement.op) {
    case Op::kIn:
    case Op::kNotIn:
      if (values.empty())
        errors.push_back(
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be "
            "empty");
      break;
    case Op::kExists:
    case Op::kDoesNotExist:
      if (!values.empty())
        errors.push_back(
            "values: Invalid value: values set must be empty for exists and does not exist");
      break;
    case Op::kGreaterThan:
    case Op::kLessThan:
      if (values.size() != 1)
        errors.push_back(
            "values: Invalid value: for 'Gt', 'Lt' operators, exactly one value is required");
      for (std::size_t i = 0; i < values.size(); ++i)
        if (std::int64_t ignored = 0; !integer(values[i], ignored))
          errors.push_back(invalid("values[" + std::to_string(i) + "]", values[i],
                                   {"for 'Gt', 'Lt' operators, the value must be an integer"}));
      break;
  }
  for (std::size_t i = 0; i < values.size(); ++i)
    if (std::vector<std::string> value = value_errors(values[i]); !value.empty())
      errors.push_back(
          invalid("values[" + std::to_string(i) + "][" + requirement.key + "]", values[i], value));
  return errors;
}

enum class Token {
  kEnd,
  kIdentifier,
  kNot,  // "!", before a key
  kEquals,
  kDoubleEquals,
  kNotEquals,
  kGreaterThan,
  kLessThan,
  kIn,
  kNotIn,
  kOpenPar,
  kClosePar,
  kComma,
};

struct Item {
  Token token;
  std::string literal;
};

bool is_special(char c) {
  return std::string_view("=!(),><").find(c) != std::string_view::npos;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// labels.Lexer: operators are the longest of "!=", "==" and the single
// symbols; words run to a symbol or a space.
std::vector<Item> scan(std::string_view text) {
  static const std::map<char, Token> kSymbols{{'=', Token::kEquals},  {'!', Token::kNot},
                                              {'(', Token::kOpenPar}, {')', Token::kClosePar},
                                              {',', Token::kComma},   {'>', Token::kGreaterThan},
                                              {'<', Token::kLessThan}};
  std::vector<Item> items;
  std::size_t at = 0;
  while (true) {
    while (at < text.size() && is_space(text[at]))
      ++at;
    if (at == text.size()) break;
    std::string_view two = text.substr(at, 2);
    if (two == "!=" || two == "==") {
      items.push_back({two == "!=" ? Token::kNotEquals : Token::kDoubleEquals, std::string(two)});
      at += 2;
    } else if (is_special(text[at])) {
      items.push_back({kSymbols.at(text[at]), std::string(1, text[at])});
      ++at;
    } else {
      std::size_t end = at;
      while (end < text.size() && !is_special(text[end]) && !is_space(text[end]))
        ++end;
      std::string word(text.substr(at, end - at));
      at = end;
      Token token = word == "in"      ? Token::kIn
                    : word == "notin" ? Token::kNotIn
                                      : Token::kIdentifier;
      items.push_back({token, std::move(word)});
    }
  }
  items.push_back({Token::kEnd, ""});
  return items;
}

// labels.Parser, with its messages. Each step answers "" or its error.
class Parser {
 public:
  explicit Parser(std::string_view text) : items_(scan(text)) {}

  std::string parse(LabelSelector& out) {
    while (true) {
      Item next = lookahead();
      if (next.token == Token::kEnd) return {};
      if (next.token != Token::kIdentifier && next.token != Token::kNot)
        return "found '" + next.literal + "', expected: !, identifier, or 'end of string'";
      LabelRequirement requirement;
      if (std::string error = parse_requirement(requirement); !error.empty())
        return "unable to parse requirement: " + error;
      out.requirements.push_back(std::move(requirement));
      Item after = consume();
      if (after.token == Token::kEnd) return {};
      if (after.token != Token::kComma)
        return "found '" + after.literal + "', expected: ',' or 'end of string'";
      Item following = lookahead();
      if (following.token != Token::kIdentifier && following.token != Token::kNot)
        return "found '" + following.literal + "', expected: identifier after ','";
    }
  }

 private:
  // Where a value may stand, "in" and "notin" are words like others.
  Item lookahead(bool values = true) const { return as(items_[position_], values); }
  Item consume(bool values = true) {
    Item item = as(items_[position_], values);
    if (position_ + 1 < items_.size()) ++position_;
    return item;
  }
  static Item as(Item item, bool values) {
    if (values && (item.token == Token::kIn || item.token == Token::kNotIn))
      item.token = Token::kIdentifier;
    return item;
  }

  std::string parse_requirement(LabelRequirement& out) {
    Item key = consume();
    const bool negated = key.token == Token::kNot;
    if (negated) key = consume();
    if (key.token != Token::kIdentifier) return "found '" + key.literal + "', expected: identifier";
    if (std::vector<std::string> errors = key_errors(key.literal); !errors.empty())
      return invalid("<nil>", key.literal, errors);  // the parser's path is nil
    out.key = key.literal;
    const Token next = lookahead().token;
    if (negated || next == Token::kEnd || next == Token::kComma) {
      out.op = negated ? Op::kDoesNotExist : Op::kExists;
      return {};
    }
    Item op = consume(false);
    std::set<std::string> values;  // sorted and unique, as sets.String
    std::string error;
    switch (op.token) {
      case Token::kIn:
      case Token::kNotIn:
        out.op = op.token == Token::kIn ? Op::kIn : Op::kNotIn;
        error = parse_values(values);
        break;
      case Token::kEquals:
      case Token::kDoubleEquals:
      case Token::kNotEquals:
      case Token::kGreaterThan:
      case Token::kLessThan:
        out.op = op.token == Token::kNotEquals     ? Op::kNotIn
                 : op.token == Token::kGreaterThan ? Op::kGreaterThan
                 : op.token == Token::kLessThan    ? Op::kLessThan
                                                   : Op::kIn;
        error = parse_exact_value(values);
        break;
      default:
        return "found '" + op.literal + "', expected: in, notin, =, ==, !=, gt, lt";
    }
    if (!error.empty()) return error;
    out.values.assign(values.begin(), values.end());
    std::vector<std::string> errors = requirement_errors(out);
    if (errors.size() == 1) return errors.front();
    if (errors.empty()) return {};
    std::string aggregate = "[";  // utilerrors.Aggregate
    for (std::size_t i = 0; i < errors.size(); ++i)
      aggregate += (i == 0 ? "" : ", ") + errors[i];
    return aggregate + "]";
  }

  // "(x,y)"; empty values stand for "".
  std::string parse_values(std::set<std::string>& out) {
    Item open = consume();
    if (open.token != Token::kOpenPar) return "found '" + open.literal + "' expected: '('";
    Item next = lookahead();
    if (next.token == Token::kClosePar) {
      consume();
      out.insert("");
      return {};
    }
    if (next.token != Token::kIdentifier && next.token != Token::kComma)
      return "found '" + next.literal + "', expected: ',', ')' or identifier";
    while (true) {
      Item item = consume();
      if (item.token == Token::kIdentifier) {
        out.insert(item.literal);
        Item after = lookahead();
        if (after.token == Token::kClosePar) break;
        if (after.token != Token::kComma)
          return "found '" + after.literal + "', expected: ',' or ')'";
      } else if (item.token == Token::kComma) {
        const Token after = lookahead().token;  // "(,", ",)" and ",,"
        if (out.empty() || after == Token::kClosePar || after == Token::kComma) out.insert("");
        if (after == Token::kClosePar) break;
      } else {
        return "found '" + item.literal + "', expected: ',', or identifier";
      }
    }
    consume();  // the ")"
    return {};
  }

  std::string parse_exact_value(std::set<std::string>& out) {
    const Token next = lookahead().token;
    if (next == Token::kEnd || next == Token::kComma) {
      out.insert("");
      return {};
    }
    Item value = consume();
    if (value.token != Token::kIdentifier)
      return "found '" + value.literal + "', expected: identifier";
    out.insert(value.literal);
    return {};
  }

  std::vector<Item> items_;
  std::size_t position_ = 0;
};

std::string string_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : std::string{};
}

}  // namespace

bool LabelRequirement::matches(const json::object* labels) const {
  const json::value* label = labels != nullptr ? labels->if_contains(key) : nullptr;
  const bool has = label != nullptr && label->is_string();
  const std::string_view value = has ? std::string_view(label->get_string()) : std::string_view{};
  const bool listed = has && std::find(values.begin(), values.end(), value) != values.end();
  switch (op) {
    case Op::kIn:
      return listed;
    case Op::kNotIn:
      return !listed;
    case Op::kExists:
      return has;
    case Op::kDoesNotExist:
      return !has;
    case Op::kGreaterThan:
    case Op::kLessThan: {
      std::int64_t actual = 0, bound = 0;
      if (!has || values.size() != 1 || !integer(value, actual) || !integer(values[0], bound))
        return false;
      return op == Op::kGreaterThan ? actual > bound : actual < bound;
    }
  }
  return false;
}

bool LabelSelector::matches(const json::object& object) const {
  const json::value* metadata = object.if_contains("metadata");
  const json::value* labels = metadata != nullptr && metadata->is_object()
                                  ? metadata->get_object().if_contains("labels")
                                  : nullptr;
  const json::object* set =
      labels != nullptr && labels->is_object() ? &labels->get_object() : nullptr;
  return std::all_of(requirements.begin(), requirements.end(),
                     [&](const LabelRequirement& requirement) { return requirement.matches(set); });
}

Expected<LabelSelector> parse_label_selector(std::string_view text) {
  LabelSelector selector;
  if (std::string error = Parser(text).parse(selector); !error.empty())
    return bad_request_error(std::move(error));
  return selector;
}

std::optional<LabelSelector> label_selector_from(const json::value& selector) {
  if (!selector.is_object()) return std::nullopt;
  const json::object& given = selector.get_object();
  LabelSelector out;
  if (const json::value* labels = given.if_contains("matchLabels"); labels && labels->is_object())
    for (const auto& label : labels->get_object()) {
      if (!label.value().is_string()) return std::nullopt;
      out.requirements.push_back(
          {std::string(label.key()), Op::kIn, {std::string(label.value().get_string())}});
    }
  static const std::map<std::string, Op, std::less<>> kOperators{
      {"In", Op::kIn},
      {"NotIn", Op::kNotIn},
      {"Exists", Op::kExists},
      {"DoesNotExist", Op::kDoesNotExist}};
  const json::value* expressions = given.if_contains("matchExpressions");
  if (expressions != nullptr && expressions->is_array())
    for (const json::value& expression : expressions->get_array()) {
      if (!expression.is_object()) return std::nullopt;
      auto op = kOperators.find(string_at(expression.get_object(), "operator"));
      if (op == kOperators.end()) return std::nullopt;
      LabelRequirement requirement{string_at(expression.get_object(), "key"), op->second, {}};
      if (const json::value* values = expression.get_object().if_contains("values");
          values && values->is_array())
        for (const json::value& value : values->get_array()) {
          if (!value.is_string()) return std::nullopt;
          requirement.values.emplace_back(value.get_string());
        }
      out.requirements.push_back(std::move(requirement));
    }
  for (const LabelRequirement& requirement : out.requirements)
    if (!requirement_errors(requirement).empty()) return std::nullopt;
  return out;
}

}  // namespace tetherd::test::apiserver
