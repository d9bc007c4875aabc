#include "test/support/api_server/authorization.h"

#include <algorithm>
#include <random>

namespace tetherd::test::apiserver {
namespace {

bool matches(const std::string& pattern, std::string_view value) {
  return pattern == "*" || pattern == value;
}

bool rule_allows(const AccessRule& rule, const Identity& who, const std::string& verb_asked,
                 std::string_view group, std::string_view resource, std::string_view namespace_,
                 std::string_view name_asked) {
  bool verb = rule.verbs.contains("*") || rule.verbs.contains(verb_asked);
  // As RBAC's resourceNames: a rule with names never matches a request
  // without one (create, or a list/watch not pinned by metadata.name).
  bool name = rule.names.empty() || rule.names.contains(std::string(name_asked));
  const bool subject = rule.users_in_group.empty()
                           ? rule.user == who.user
                           : std::find(who.groups.begin(), who.groups.end(), rule.users_in_group) !=
                                 who.groups.end();
  return subject && verb && matches(rule.group, group) && matches(rule.resource, resource) &&
         matches(rule.namespace_, namespace_) && name;
}

}  // namespace

void Authorizer::allow(AccessRule rule) {
  std::lock_guard lock(mutex_);
  rules_.push_back(std::move(rule));
}

void Authorizer::set_derived(std::vector<AccessRule> rules) {
  std::lock_guard lock(mutex_);
  derived_ = std::move(rules);
}

bool Authorizer::allowed(const Identity& who, const std::string& verb, std::string_view group,
                         std::string_view resource, std::string_view namespace_,
                         std::string_view name) const {
  if (std::find(who.groups.begin(), who.groups.end(), "system:masters") != who.groups.end())
    return true;
  std::lock_guard lock(mutex_);
  for (const auto* rules : {&rules_, &derived_})
    for (const AccessRule& rule : *rules)
      if (rule_allows(rule, who, verb, group, resource, namespace_, name)) return true;
  return false;
}

std::optional<ApiError> Authorizer::check(const Identity& who, const Attributes& what) const {
  std::string resource(what.type->resource);
  if (!what.subresource.empty()) resource += "/" + what.subresource;
  if (allowed(who, what.verb, what.type->group, resource, what.namespace_, what.name))
    return std::nullopt;
  // kube-apiserver's wording for a request without a namespace.
  const std::string scope = what.namespace_.empty()
                                ? std::string("at the cluster scope")
                                : "in the namespace \"" + what.namespace_ + "\"";
  return forbidden_error(*what.type, what.name,
                         "User \"" + who.user + "\" cannot " + what.verb + " resource \"" +
                             resource + "\" in API group \"" + std::string(what.type->group) +
                             "\" " + scope);
}

Identity token_identity(const std::string& user) {
  Identity who{user, {}, {}};
  constexpr std::string_view kPrefix = "system:serviceaccount:";
  if (user.starts_with(kPrefix)) {
    const std::string rest = user.substr(kPrefix.size());
    who.groups = {"system:serviceaccounts",
                  "system:serviceaccounts:" + rest.substr(0, rest.find(':'))};
  }
  who.groups.push_back("system:authenticated");
  return who;
}

std::optional<std::string> TokenRegistry::user_of(const std::string& token) const {
  std::lock_guard lock(mutex_);
  if (auto found = tokens_.find(token); found != tokens_.end()) return found->second;
  auto found = issued_.find(token);
  if (found == issued_.end() || found->second.second <= std::chrono::system_clock::now())
    return std::nullopt;
  return found->second.first;
}

std::string TokenRegistry::issue(const std::string& user,
                                 std::chrono::system_clock::time_point expires) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::random_device random;
  std::string token = "tetherd-test.";
  for (int i = 0; i < 43; ++i)
    token += kAlphabet[random() % 64];
  std::lock_guard lock(mutex_);
  issued_[token] = {user, expires};
  return token;
}

}  // namespace tetherd::test::apiserver
