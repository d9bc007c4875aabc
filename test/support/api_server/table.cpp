#include "test/support/api_server/table.h"

#include <charconv>
#include <ctime>

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

namespace tetherd::test::apiserver {
namespace json = boost::json;
namespace {

constexpr char kNameDescription[] =
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

std::string trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ')
    text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ')
    text.remove_suffix(1);
  return std::string(text);
}

struct Column {
  std::string name, type, format, description, path;
  std::int64_t priority = 0;
};

// The literal of a filter: "text", 'text' or a number.
std::optional<json::value> literal(std::string_view raw) {
  const std::string trimmed = trim(raw);
  std::string_view text = trimmed;
  if (text.size() >= 2 && (text.front() == '"' || text.front() == '\'') &&
      text.back() == text.front())
    return json::value(json::string(text.substr(1, text.size() - 2)));
  double number = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return json::value(number);
}

bool same(const json::value& a, const json::value& b) {
  if (a.is_number() && b.is_number()) return a.to_number<double>() == b.to_number<double>();
  return a == b;
}

// Steps of a path: ".name", "[N]", "[*]", "[?(...)]". False when it does not parse.
bool evaluate(std::string_view path, std::vector<json::value>& current) {
  while (!path.empty()) {
    std::vector<json::value> next;
    if (path.front() == '.') {
      path.remove_prefix(1);
      std::size_t end = path.find_first_of(".[");
      std::string field(path.substr(0, end));
      path = end == std::string_view::npos ? std::string_view{} : path.substr(end);
      if (field.empty()) return false;
      for (const json::value& value : current)
        if (value.is_object())
          if (const json::value* member = value.get_object().if_contains(field))
            next.push_back(*member);
    } else if (path.front() == '[') {
      std::size_t close = path.starts_with("[?(") ? path.find(")]") : path.find(']');
      if (close == std::string_view::npos) return false;
      std::string_view inside = path.substr(1, close - 1);
      path.remove_prefix(close + (path.starts_with("[?(") ? 2 : 1));
      if (inside == "*") {
        for (const json::value& value : current)
          if (value.is_array())
            for (const json::value& item : value.get_array())
              next.push_back(item);
      } else if (inside.starts_with("?(")) {
        inside.remove_prefix(2);
        std::size_t op = inside.find("==");
        bool negated = false;
        if (op == std::string_view::npos) {
          op = inside.find("!=");
          negated = true;
        }
        if (op == std::string_view::npos) return false;
        std::string left = trim(inside.substr(0, op));
        std::optional<json::value> right = literal(inside.substr(op + 2));
        if (!left.starts_with("@") || !right) return false;
        for (const json::value& value : current) {
          if (!value.is_array()) continue;
          for (const json::value& item : value.get_array()) {
            std::vector<json::value> found{item};
            if (!evaluate(std::string_view(left).substr(1), found)) return false;
            bool match = !found.empty() && same(found.front(), *right);
            if (match != negated) next.push_back(item);
          }
        }
      } else {
        int index = 0;
        auto [end, error] = std::from_chars(inside.data(), inside.data() + inside.size(), index);
        if (error != std::errc{} || end != inside.data() + inside.size()) return false;
        for (const json::value& value : current)
          if (value.is_array()) {
            const json::array& array = value.get_array();
            long at = index < 0 ? static_cast<long>(array.size()) + index : index;
            if (at >= 0 && at < static_cast<long>(array.size())) next.push_back(array[at]);
          }
      }
    } else {
      return false;
    }
    current = std::move(next);
  }
  return true;
}

// RFC 3339 in UTC ("2026-12-03T12:00:00Z", fractions allowed) as seconds since the epoch.
std::optional<std::time_t> parse_time(const std::string& text) {
  std::tm parts{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &parts);
  if (end == nullptr) return std::nullopt;
  if (*end == '.')
    for (++end; *end >= '0' && *end <= '9';)
      ++end;
  if (std::string_view(end) != "Z") return std::nullopt;
  return timegm(&parts);
}

json::value age_cell(const json::value& value) {
  if (!value.is_string()) return nullptr;
  std::optional<std::time_t> then = parse_time(std::string(value.get_string()));
  if (!then) return "<invalid>";
  return json::value(human_duration(static_cast<long long>(std::time(nullptr) - *then)));
}

json::value printed(const json::value& value) {
  return value.is_string() ? json::value(value.get_string()) : json::value(json::serialize(value));
}

json::value cell(const Column& column, const json::object& object) {
  std::vector<json::value> results = jsonpath(object, column.path);
  if (results.empty()) return nullptr;
  const json::value& first = results.front();
  if (column.type == "string") {
    std::string joined;
    for (const json::value& result : results) {
      if (!joined.empty()) joined += ' ';
      json::value text = printed(result);
      joined += text.get_string();
    }
    return json::value(joined);
  }
  if (column.type == "integer" && first.is_number())
    return json::value(static_cast<std::int64_t>(first.to_number<double>()));
  if (column.type == "number" && first.is_number()) return first.to_number<double>();
  if (column.type == "boolean" && first.is_bool()) return first;
  if (column.type == "date") return age_cell(first);
  return nullptr;
}

std::vector<Column> columns_of(const ResourceType& type, const std::optional<json::object>& crd) {
  std::vector<Column> columns{{"Name", "string", "name", kNameDescription, ".metadata.name"}};
  const json::value* versions = nullptr;
  if (crd)
    if (const json::value* spec = crd->if_contains("spec"); spec && spec->is_object())
      versions = spec->get_object().if_contains("versions");
  if (versions != nullptr && versions->is_array())
    for (const json::value& version : versions->get_array()) {
      if (!version.is_object()) continue;
      const json::object& entry = version.get_object();
      const json::value* name = entry.if_contains("name");
      const json::value* printer = entry.if_contains("additionalPrinterColumns");
      if (!name || *name != json::value(type.version) || !printer || !printer->is_array()) continue;
      for (const json::value& item : printer->get_array()) {
        if (!item.is_object()) continue;
        const json::object& definition = item.get_object();
        auto text = [&](std::string_view key) {
          const json::value* value = definition.if_contains(key);
          return value && value->is_string() ? std::string(value->get_string()) : std::string{};
        };
        Column column{text("name"), text("type"), text("format"), text("description"),
                      text("jsonPath")};
        if (const json::value* priority = definition.if_contains("priority");
            priority && priority->is_int64())
          column.priority = priority->get_int64();
        columns.push_back(std::move(column));
      }
      if (columns.size() > 1) return columns;
    }
  columns.push_back({"Age", "date", "",
                     "CreationTimestamp is a timestamp representing the server time when this "
                     "object was created.",
                     ".metadata.creationTimestamp"});
  return columns;
}

}  // namespace

bool wants_table(std::string_view accept) {
  while (!accept.empty()) {
    std::size_t comma = accept.find(',');
    std::string_view range = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
    bool table = false, v1 = false, meta = false;
    std::size_t semicolon = range.find(';');
    std::string media = trim(range.substr(0, semicolon));
    while (semicolon != std::string_view::npos) {
      range.remove_prefix(semicolon + 1);
      semicolon = range.find(';');
      std::string parameter = trim(range.substr(0, semicolon));
      table |= parameter == "as=Table";
      v1 |= parameter == "v=v1";
      meta |= parameter == "g=meta.k8s.io";
    }
    if (media == "application/json" && table && v1 && meta) return true;
    if (media == "application/json" || media == "*/*" || media == "application/*") return false;
  }
  return false;
}

std::vector<json::value> jsonpath(const json::value& root, std::string_view path) {
  // As kubectl and the CRD columns write it: ".a.b", or "{.a.b}".
  if (path.starts_with("{") && path.ends_with("}")) path = path.substr(1, path.size() - 2);
  std::vector<json::value> current{root};
  if (!evaluate(path, current)) return {};
  return current;
}

std::string human_duration(long long seconds) {
  auto s = [](long long n) { return std::to_string(n); };
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return s(seconds) + "s";
  const long long minutes = seconds / 60;
  if (minutes < 10)
    return seconds % 60 == 0 ? s(minutes) + "m" : s(minutes) + "m" + s(seconds % 60) + "s";
  if (minutes < 180) return s(minutes) + "m";
  const long long hours = seconds / 3600;
  if (hours < 8) return minutes % 60 == 0 ? s(hours) + "h" : s(hours) + "h" + s(minutes % 60) + "m";
  if (hours < 48) return s(hours) + "h";
  if (hours < 24 * 8)
    return hours % 24 == 0 ? s(hours / 24) + "d" : s(hours / 24) + "d" + s(hours % 24) + "h";
  if (hours < 24 * 365 * 2) return s(hours / 24) + "d";
  if (hours < 24 * 365 * 8) {
    const long long days = (hours / 24) % 365;
    return days == 0 ? s(hours / 24 / 365) + "y" : s(hours / 24 / 365) + "y" + s(days) + "d";
  }
  return s(hours / 24 / 365) + "y";
}

json::object table_of(const ResourceType& type, const std::vector<json::object>& items,
                      const std::string& resource_version, const std::optional<json::object>& crd,
                      std::string_view include_object) {
  std::vector<Column> columns = columns_of(type, crd);
  json::array definitions;
  for (const Column& column : columns)
    definitions.emplace_back(json::object{{"name", column.name},
                                          {"type", column.type},
                                          {"format", column.format},
                                          {"description", column.description},
                                          {"priority", column.priority}});
  json::array rows;
  for (const json::object& item : items) {
    json::array cells;
    for (const Column& column : columns)
      cells.push_back(cell(column, item));
    json::object row{{"cells", std::move(cells)}};
    if (include_object == "Object") {
      row["object"] = item;
    } else if (include_object != "None") {
      const json::value* metadata = item.if_contains("metadata");
      row["object"] = json::object{{"kind", "PartialObjectMetadata"},
                                   {"apiVersion", "meta.k8s.io/v1"},
                                   {"metadata", metadata ? *metadata : json::object{}}};
    }
    rows.emplace_back(std::move(row));
  }
  return json::object{{"kind", "Table"},
                      {"apiVersion", "meta.k8s.io/v1"},
                      {"metadata", json::object{{"resourceVersion", resource_version}}},
                      {"columnDefinitions", std::move(definitions)},
                      {"rows", std::move(rows)}};
}

}  // namespace tetherd::test::apiserver
