#include "agent/config/kubeconfig_writer.h"

#include <yaml-cpp/yaml.h>

#include "agent/core/base64.h"

namespace tetherd {

std::string render_kubeconfig(const NodeKubeconfig& k) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "apiVersion" << YAML::Value << "v1";
  out << YAML::Key << "kind" << YAML::Value << "Config";
  out << YAML::Key << "clusters" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << "cloud";
  out << YAML::Key << "cluster" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "server" << YAML::Value << k.server;
  out << YAML::Key << "certificate-authority-data" << YAML::Value << encode_base64(k.ca_pem);
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "users" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << k.user;
  out << YAML::Key << "user" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "client-certificate" << YAML::Value << k.client_certificate;
  out << YAML::Key << "client-key" << YAML::Value << k.client_key;
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "contexts" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << k.user;
  out << YAML::Key << "context" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "cluster" << YAML::Value << "cloud";
  out << YAML::Key << "user" << YAML::Value << k.user;
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "current-context" << YAML::Value << k.user;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace tetherd
