#include "test/support/api_server/authorization.h"

#include <algorithm>

namespace tetherd::test::apiserver {
namespace {

bool matches(const std::string& pattern, std::string_view value) {
  return pattern == "*" || pattern == value;
}

bool rule_allows(const AccessRule& rule, const Identity& who, const Attributes& what) {
  std::string resource(what.type->resource);
  if (!what.subresource.empty()) resource += "/" + what.subresource;
  bool verb = rule.verbs.contains("*") || rule.verbs.contains(what.verb);
  // As RBAC's resourceNames: a rule with names never matches a request
  // without one (create, or a list/watch not pinned by metadata.name).
  bool name = rule.names.empty() || rule.names.contains(what.name);
  const bool subject = rule.users_in_group.empty()
                           ? rule.user == who.user
                           : std::find(who.groups.begin(), who.groups.end(), rule.users_in_group) !=
                                 who.groups.end();
  return subject && verb && matches(rule.group, what.type->group) &&
         matches(rule.resource, resource) && matches(rule.namespace_, what.namespace_) && name;
}

}  // namespace

void Authorizer::allow(AccessRule rule) {
  std::lock_guard lock(mutex_);
  rules_.push_back(std::move(rule));
}

std::optional<ApiError> Authorizer::check(const Identity& who, const Attributes& what) const {
  if (std::find(who.groups.begin(), who.groups.end(), "system:masters") != who.groups.end())
    return std::nullopt;
  {
    std::lock_guard lock(mutex_);
    for (const AccessRule& rule : rules_)
      if (rule_allows(rule, who, what)) return std::nullopt;
  }
  std::string resource(what.type->resource);
  if (!what.subresource.empty()) resource += "/" + what.subresource;
  // kube-apiserver's wording for a request without a namespace.
  const std::string scope = what.namespace_.empty()
                                ? std::string("at the cluster scope")
                                : "in the namespace \"" + what.namespace_ + "\"";
  return forbidden_error(*what.type, what.name,
                         "User \"" + who.user + "\" cannot " + what.verb + " resource \"" +
                             resource + "\" in API group \"" + std::string(what.type->group) +
                             "\" " + scope);
}

}  // namespace tetherd::test::apiserver
