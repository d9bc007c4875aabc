#pragma once
// API discovery as kube-apiserver serves it, for standard clients (kubectl's
// RESTMapper, client-go's discovery): /api (APIVersions), /apis
// (APIGroupList, one version per group, preferred), /api/v1 and /apis/G/V
// (APIResourceList: name, singularName, namespaced, kind, verbs, shortNames,
// and the subresources status, approval, token and eviction as their own
// entries), and /openapi/v2: a minimal valid OpenAPI v2 document (swagger
// and info, no paths, no definitions), in protobuf when asked for it
// (kubectl 1.20 asks for nothing else) and JSON otherwise. With no
// definitions kubectl's client-side validation finds no schema for a kind
// and skips it, and its apply falls back to the compiled-in types for
// strategic merge patches (and merge patches for custom resources), as with
// an old server.
//
// What it leaves out: the aggregated discovery (application/json;g=apidiscovery.k8s.io),
// /openapi/v3, storageVersionHash and categories, deletecollection (not
// served), and types appear whether or not a CRD defines them.

#include <string_view>

#include "test/support/api_server/resources.h"
#include "test/support/api_server/rest_api.h"

namespace tetherd::test::apiserver {

// The answer to a discovery path (kApiVersions, kApiGroups, kGroupVersion, kOpenApi).
Response discovery_response(const ResourcePath& path, const Request& request);

}  // namespace tetherd::test::apiserver
