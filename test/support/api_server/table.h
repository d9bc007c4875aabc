#pragma once
// Server-side printing as kube-apiserver does it for `kubectl get`: a
// meta.k8s.io/v1 Table when the Accept header asks for one
// (application/json;as=Table;v=v1;g=meta.k8s.io). Custom resources get the
// columns of their CustomResourceDefinition's additionalPrinterColumns
// (read from the stored CRD, of the version served) after Name, as the
// apiextensions-apiserver's table convertor prints them: a JSONPath per
// column; a string column prints every result (space separated), an
// integer, number or boolean column its first result, a date column its
// first result as a duration since then ("5m", "3d4h"; a time in the future,
// more than a second ahead, is "<invalid>", as HumanDuration has it), and a
// missing value is null. Without a CRD or without columns: Name and Age.
// Rows carry the object as PartialObjectMetadata (includeObject=Metadata,
// the default), the whole object (Object) or nothing (None).
//
// The JSONPath subset: .field chains, [N], [*], and filters
// [?(@.a.b=="text")] (== or !=, a string or number literal).
//
// What it leaves out: the built-in types' own columns (a Secret's TYPE, a
// CSR's SIGNERNAME, ...: they print Name and Age), tables in watch events,
// v1beta1 tables, and JSONPath beyond the subset (ranges, unions, ..).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "test/support/api_server/resources.h"

namespace tetherd::test::apiserver {

// Whether the Accept header prefers a meta.k8s.io/v1 Table to plain JSON.
bool wants_table(std::string_view accept);

// The values `path` selects in `root`; nothing when it does not parse.
std::vector<boost::json::value> jsonpath(const boost::json::value& root, std::string_view path);

// HumanDuration of k8s.io/apimachinery: "45s", "5m", "3h20m", "4d", "2y30d".
std::string human_duration(long long seconds);

// The Table of `items`. `crd`: the type's stored CustomResourceDefinition,
// if any; `include_object`: "None", "Metadata" (also "") or "Object".
boost::json::object table_of(const ResourceType& type,
                             const std::vector<boost::json::object>& items,
                             const std::string& resource_version,
                             const std::optional<boost::json::object>& crd,
                             std::string_view include_object);

}  // namespace tetherd::test::apiserver
