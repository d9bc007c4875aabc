#include "agent/core/node_csr.h"

#include <algorithm>
#include <cctype>
#include <ctime>

#include <boost/json/array.hpp>

#include "agent/core/base64.h"

namespace tetherd {

namespace json = boost::json;

std::string node_user(std::string_view node) {
  return "tetherd:" + std::string(node);
}

std::string csr_name(std::string_view node, WallTime now) {
  const std::time_t t = std::chrono::system_clock::to_time_t(
      std::chrono::time_point_cast<std::chrono::system_clock::duration>(now));
  std::tm utc{};
  gmtime_r(&t, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &utc);
  constexpr std::string_view kPrefix = "tetherd-";
  const std::size_t room = 253 - kPrefix.size() - 1 - std::string_view(stamp).size();
  std::string_view cut = node.substr(0, room);
  while (!cut.empty() && (cut.back() == '-' || cut.back() == '.'))
    cut.remove_suffix(1);
  return std::string(kPrefix) + std::string(cut) + "-" + stamp;
}

json::object csr_object(std::string_view node, std::string_view name, std::string_view csr_pem,
                        std::optional<Duration> life) {
  json::object spec{{"request", encode_base64(csr_pem)},
                    {"signerName", kClientSignerName},
                    {"usages", json::array{"digital signature", "client auth"}}};
  if (life) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(*life).count();
    spec["expirationSeconds"] = std::max<std::int64_t>(seconds, 600);
  }
  return json::object{
      {"apiVersion", "certificates.k8s.io/v1"},
      {"kind", "CertificateSigningRequest"},
      {"metadata",
       {{"name", name},
        {"labels", {{"app.kubernetes.io/managed-by", "tetherd"}, {"tetherd.io/node", node}}}}},
      {"spec", std::move(spec)}};
}

std::string approve_command(std::string_view name) {
  return "kubectl certificate approve " + std::string(name);
}

Result<std::string> parse_ca_pin(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (!text.starts_with(kPrefix))
    return make_error(
        "a CA pin is sha256:<64 hex digits> (as kubeadm's "
        "--discovery-token-ca-cert-hash), not \"" +
        std::string(text.substr(0, 80)) + "\"");
  std::string hex(text.substr(kPrefix.size()));
  if (hex.size() != 64 ||
      !std::all_of(hex.begin(), hex.end(), [](unsigned char c) { return std::isxdigit(c) != 0; }))
    return make_error("a CA pin has 64 hex digits after sha256:, this one " +
                      std::to_string(hex.size()) + " characters");
  std::transform(hex.begin(), hex.end(), hex.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return Result<std::string>(boost::system::in_place_value, std::move(hex));
}

}  // namespace tetherd
