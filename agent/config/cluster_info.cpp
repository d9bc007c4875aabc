#include "agent/config/cluster_info.h"

#include <boost/json/parse.hpp>
#include <yaml-cpp/yaml.h>

#include "agent/core/base64.h"

namespace tetherd {
namespace {

constexpr std::size_t kMaxKubeconfig = 64 << 10;
constexpr std::string_view kWhat = "kube-public/cluster-info";

Result<std::string> fail(const std::string& why) {
  return Result<std::string>(boost::system::in_place_error,
                             make_error(std::string(kWhat) + ": " + why));
}

}  // namespace

Result<std::string> cluster_info_ca(std::string_view configmap_json) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(configmap_json, ec);
  if (ec) return fail("not JSON: " + ec.message());
  const auto* data = v.is_object() ? v.as_object().if_contains("data") : nullptr;
  const auto* text =
      data != nullptr && data->is_object() ? data->as_object().if_contains("kubeconfig") : nullptr;
  if (text == nullptr || !text->is_string()) return fail("no data.kubeconfig");
  if (text->as_string().size() > kMaxKubeconfig)
    return fail("data.kubeconfig is larger than " + std::to_string(kMaxKubeconfig) + " bytes");
  std::string encoded;
  try {
    const YAML::Node root = YAML::Load(std::string(text->as_string()));
    const YAML::Node clusters = root["clusters"];
    if (!clusters || !clusters.IsSequence() || clusters.size() == 0 || !clusters[0].IsMap())
      return fail("data.kubeconfig has no clusters");
    const YAML::Node cluster = clusters[0]["cluster"];
    const YAML::Node ca =
        cluster && cluster.IsMap() ? cluster["certificate-authority-data"] : YAML::Node();
    if (!ca || !ca.IsScalar()) return fail("data.kubeconfig has no certificate-authority-data");
    encoded = ca.Scalar();
  } catch (const YAML::Exception& e) {
    return fail(std::string("data.kubeconfig is not YAML: ") + e.what());
  }
  return decode_base64(std::string(kWhat) + " certificate-authority-data", encoded);
}

}  // namespace tetherd
