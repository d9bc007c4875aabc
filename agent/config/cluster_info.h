#pragma once
// kubeadm's public ConfigMap kube-public/cluster-info, which anyone may read
// on a kubeadm cluster (and on others that publish it): data.kubeconfig, a
// kubeconfig with the cluster's server and CA and no credentials. Read by
// `tetherctl enroll` before anything is trusted, so the CA it gives is only
// a candidate, to be matched against the pinned hash. Bounded: the JSON is
// what a bounded read returned, the kubeconfig in it at most 64 KiB.

#include <string>
#include <string_view>

#include "agent/core/result.h"

namespace tetherd {

// The PEM of clusters[0].cluster.certificate-authority-data in the
// ConfigMap's data.kubeconfig. An error says what is missing or wrong.
Result<std::string> cluster_info_ca(std::string_view configmap_json);

}  // namespace tetherd
