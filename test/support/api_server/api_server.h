#pragma once
// A stand-in for kube-apiserver, for tests of tetherd's Kubernetes client:
// HTTPS with mutual TLS on 127.0.0.1 (port 0), the REST semantics tetherd
// relies on, and faults on demand (misbehave()).
//
// What it does as kube-apiserver does:
// - paths /api/v1/namespaces/NS/{secrets,configmaps,events,serviceaccounts}[/NAME],
//   /api/v1/namespaces/NS/pods[/NAME[/status|/eviction]],
//   /apis/G/V/namespaces/NS/RESOURCE[/NAME[/status]] for tetherd.io/v1alpha1
//   edgenodes, coordination.k8s.io/v1 leases, apps/v1 deployments,
//   policy/v1 poddisruptionbudgets and rbac.authorization.k8s.io/v1 roles
//   and rolebindings; the collections of all these across namespaces, for
//   list and watch (/api/v1/pods, /apis/G/V/RESOURCE; RBAC: namespace "");
//   cluster-scoped (/api/v1/RESOURCE[/NAME[/status]],
//   /apis/G/V/RESOURCE[/NAME[/status]]; no namespace: one in a body is
//   cleared; RBAC rules for them have namespace ""): core v1 nodes and
//   namespaces, certificates.k8s.io/v1 certificatesigningrequests (with
//   /approval and a signer: csr.h), apiextensions.k8s.io/v1
//   customresourcedefinitions, rbac's clusterroles and clusterrolebindings,
//   admissionregistration.k8s.io/v1 validatingadmissionpolicies and their
//   bindings (stored, not enforced);
//   /readyz, /livez, /version; 404 Status for anything else;
// - discovery for standard clients (/api, /apis, /api/v1, /apis/G/V,
//   /openapi/v2: discovery.h), enough for kubectl 1.20 to apply, get,
//   patch and approve (test/integration/kubectl_test.cpp);
// - get, list (fieldSelector metadata.name / metadata.namespace, and a
//   pod's spec.nodeName / status.phase, with =, ==, !=; labelSelector as
//   labels.Parse reads it: label_selector.h; resourceVersion and
//   resourceVersionMatch=Exact|NotOlderThan), watch (the same selectors; an
//   object that comes into them is ADDED, one that leaves them DELETED),
//   create, update (PUT, optimistic concurrency through
//   metadata.resourceVersion), patch (application/merge-patch+json, RFC
//   7386, metadata.resourceVersion in the patch is a precondition; and, for
//   built-in types, application/strategic-merge-patch+json applied as a
//   merge patch without its $-directives: lists are replaced, not merged by
//   key), delete (with DeleteOptions preconditions.resourceVersion);
// - meta.k8s.io/v1 Tables for get and list when the Accept header asks
//   (`kubectl get`): a CRD's additionalPrinterColumns, else Name and Age
//   (table.h);
// - status subresource for edgenodes, deployments, pods,
//   poddisruptionbudgets, nodes, namespaces, CRDs and
//   validatingadmissionpolicies (a node's create
//   keeps its status, as the kubelet registers with one); metadata.generation
//   bumped when anything but metadata and status changes; a write that
//   changes nothing is not a write (no new resourceVersion, no event);
// - the eviction subresource (POST .../pods/NAME/eviction, RBAC: create on
//   pods/eviction), honouring PodDisruptionBudgets: eviction.h; evictions()
//   lists the pods it evicted;
// - one resourceVersion counter for everything, like an etcd revision; a
//   history of `history_limit` events for watch resumption; older
//   resourceVersions give a 200 watch with an ERROR event (410 Expired);
// - watch: chunked, one JSON event per chunk and line, bookmarks when asked
//   for, timeoutSeconds ends the stream with the terminating chunk; HTTP/1.1
//   keep-alive, and a connection whose watch ended serves requests again;
// - authentication by client certificate (CN user, O groups, plus
//   system:authenticated) or, failing that, bearer token (the options' or
//   one TokenRequest issued: POST .../serviceaccounts/NAME/token);
//   RBAC-like authorization (AccessRule), from allow() and from the RBAC
//   objects written through the API or the direct store access
//   (rbac_objects.h), which `kubectl auth can-i` can ask about
//   (authorization.k8s.io/v1 selfsubjectaccessreviews); Status bodies with
//   kube-apiserver's messages for every error; TCP_NODELAY as Go sets it.
//
// What it leaves out: admission (no defaulting or schema validation beyond
// metadata.name; ValidatingAdmissionPolicies are stored and not run),
// server-side apply, JSON patches and strategic merge's keyed list merges,
// pagination (limit/continue: everything in one page), generateName,
// dryRun, finalizers and graceful deletion, managedFields,
// protobuf/YAML/CBOR, namespaces are objects but any namespace exists (no
// NotFound for a missing one, no deletion of its contents), custom
// resources are served whether a CRD defines them or not (the CRD only
// gives the Table its columns), sendInitialEvents/watch-list, field
// selectors other than metadata.name, metadata.namespace and a pod's
// spec.nodeName and status.phase (kube-apiserver knows more of a pod's, and
// some of other types'), a pod's status on create (kube-apiserver sets
// phase Pending and a qosClass; tests write the status, as the kubelet
// would), the controllers (nothing recreates an evicted pod, no disruption
// controller computes a budget's status: tests do), pods' other
// subresources (log, exec, binding, ...), what eviction.h leaves out,
// watches from a future resourceVersion wait rather than time out, a list
// with resourceVersion newer than the store is served from the current
// state rather than answered 504, the aggregated discovery, the deprecated
// /watch/ paths, and RBAC is simplified (AccessRule; system:masters allowed
// everything; discovery open to every authenticated user). As in real
// RBAC, a rule with `names` cannot allow create (the name is not in the URL)
// nor a list/watch without fieldSelector=metadata.name=<one of names>.
// Unlike the real priority-and-fairness filter, whose 429 body is text, the
// 429 here is a Status with details.retryAfterSeconds. metadata.generation
// is kept for every type (kube-apiserver leaves it out of some built-ins),
// and connections have no idle or read timeouts (the server's end closes
// them). Tokens TokenRequest issues authenticate only when certificates are
// optional (`tokens` or `anonymous` set), as TLS asks for one otherwise.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "test/support/test_pki.h"

namespace tetherd::test {

// Applied to requests after authentication (a 401 does not use one up) and
// before authorization and the store — except kDropMidStream and kDrip on a
// plain request, which act on the answer: the request is served (a write is
// stored) and its answer is cut or dripped, the "applied, but the answer
// was lost" case. TLS kinds apply to connections as accepted.
enum class Misbehaviour {
  kNone,
  kDropMidStream,  // watch: after `after_events` events close TCP abruptly (no last chunk);
                   // unary: send headers and half the body, then close
  kStall,          // read the request, answer nothing, keep the connection open (until the
                   // server stops or release_stalls())
  kStallWatch,     // watch: send 200 headers (and `after_events` events), then nothing at all
                   // (no bookmarks, no timeout) while keeping it open
  kDrip,           // send the whole response one byte every `drip_interval`
  kStatus500,      // 500 InternalError Status; /readyz and /livez: 500 with the checks as
                   // text, one failed, as kube-apiserver answers a failed health check
  kStatus503,      // 503 ServiceUnavailable Status with Retry-After
  kStatus429,      // 429 TooManyRequests Status, Retry-After header and details.retryAfterSeconds
  kOversizedBody,  // 200 with a JSON body of exactly `oversize_bytes` (a valid object with one
                   // huge string); watch: after `after_events` events, one event line of that
                   // size (newline not counted), then the watch goes on
  kMalformedJson,  // 200 with a body that is not JSON; watch: after `after_events` events, a
                   // line that is not JSON, then the watch goes on
  kGoneHttp,       // a watch request gets HTTP 410 with an Expired Status instead of 200 + ERROR
                   // event (matches watch requests only)
  kIgnoreFieldSelector,  // list and watch as if no fieldSelector were given (after RBAC has
                         // judged the request with it): a proxy or a server that sends
                         // other objects than the ones asked for
  kWrongHostCert,        // TLS: present options.wrong_host on connections accepted while armed
  kExpiredCert,          // TLS: present options.expired on connections accepted while armed
};

struct MisbehaviourSpec {
  Misbehaviour what = Misbehaviour::kNone;
  int times = 1;              // for the next N matching requests (TLS kinds: N connections)
  std::string path_contains;  // empty: any request (ignored by the TLS kinds)
  std::string method;         // "PUT": only requests of that method; empty: any
  bool watch_only = false;    // only watch requests match
  int after_events = 0;
  std::chrono::milliseconds drip_interval{50};
  std::size_t oversize_bytes = 16 << 20;
  int retry_after_seconds = 1;
};

struct ApiServerOptions {
  IssuedCert identity;        // the normal serving certificate (SAN 127.0.0.1, localhost)
  std::string client_ca_pem;  // client certificates must chain to this
  std::optional<IssuedCert> wrong_host, expired;  // for the TLS misbehaviours
  // Bearer token -> user name. When not empty, client certificates become
  // optional (verify_peer without fail_if_no_peer_cert); a request with
  // neither a certificate nor a known token gets 401. A user
  // "system:serviceaccount:NS:NAME" is in the groups system:serviceaccounts
  // and system:serviceaccounts:NS, as kube-apiserver puts it.
  std::map<std::string, std::string> tokens;
  // kube-apiserver's --anonymous-auth (kubeadm and k3s leave it on): a
  // request with neither a certificate nor a token is user
  // system:anonymous in group system:unauthenticated, and RBAC decides
  // (kubeadm lets it read kube-public/cluster-info). Certificates become
  // optional. A token that is not known is still a 401.
  bool anonymous = false;
  // The chain the server presents after its certificate (e.g. the CA, as
  // some servers send it); kube-apiserver sends what its cert file holds.
  std::string extra_chain_pem;
  // The CA whose kubernetes.io/kube-apiserver-client signer issues approved
  // CertificateSigningRequests (usually the client CA's); none: approved
  // CSRs stay unsigned, as in a cluster whose signer is off. See csr.h.
  std::optional<TestCa> csr_signer;
  std::chrono::seconds csr_max_duration{std::chrono::hours(24 * 365)};
  std::size_t history_limit = 1000;                // events kept for watch resumption
  std::chrono::milliseconds bookmark_interval{0};  // 0: bookmarks only on bookmark_now()
  std::chrono::seconds default_watch_timeout{1800};
  // The server's clock minus the true one, as its Date header says: a
  // control plane whose clock is off, or a node's that is (the witness of
  // true time, ClockWitness).
  std::chrono::seconds clock_offset{0};
  std::size_t max_request_body = 3 << 20;  // larger: 413 RequestEntityTooLarge
  // Where to listen. The socket is made by the constructing thread, so a
  // test inside a network namespace gets a server in that namespace.
  std::string listen_address = "127.0.0.1";
  std::uint16_t listen_port = 0;  // 0: any free port
};

struct RequestRecord {
  std::string method;
  std::string target;  // path and query, as sent
  std::string user;    // empty when not authenticated
  unsigned status;     // 0 when nothing was answered (stall)
  bool watch;
  std::string serial;  // the client certificate's serial (hex), "" without one
  std::chrono::steady_clock::time_point at{};  // when it was answered (or given up)
};

// RBAC, simplified: `user` (or anyone in `users_in_group`) may do `verbs` (get, list, watch,
// create, update, patch, delete) on `resource` ("edgenodes", "edgenodes/status", "leases",
// ...) in `group` ("" is core) and `namespace_`, limited to `names` when not
// empty. "*" in verbs, group, resource or namespace_ matches anything. A
// cluster-scoped resource (nodes) has namespace "": a rule grants it with
// namespace_ "" or "*", as only a ClusterRoleBinding would.
struct AccessRule {
  std::string user;  // a User subject, or "system:serviceaccount:NS:NAME"
  std::set<std::string> verbs;
  std::string group;
  std::string resource;
  std::string namespace_;
  std::set<std::string> names;
  // A Group subject instead (e.g. "tetherd:nodes", from a certificate's O):
  // when set, `user` is not looked at.
  std::string users_in_group;
};

class ApiServer {
 public:
  // Listens on options.listen_address and listen_port and serves on its own thread with its own
  // io_context. Throws std::runtime_error on bad certificates or keys.
  explicit ApiServer(ApiServerOptions options);
  ~ApiServer();  // stops the thread and closes everything
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  std::uint16_t port() const;
  std::string url() const;  // "https://<listen_address>:<port>"

  void allow(AccessRule rule);  // users in group (O=) system:masters may do everything
  // Arms one misbehaviour (replacing any armed one); kNone disarms. Throws
  // std::invalid_argument for a TLS kind whose identity is not in the options.
  void misbehave(MisbehaviourSpec spec);

  // These act on the server's thread and return once done there.
  void release_stalls();    // stalled requests and watches are closed
  void bookmark_now();      // every open watch that asked for bookmarks gets one now
  void end_watches();       // every open watch ends cleanly (terminating chunk)
  void drop_connections();  // every open connection is closed abruptly
  void compact();           // history dropped: older resourceVersions get 410
  // The server process dies: connections are reset and new ones refused.
  // Its store lives on (etcd, behind it), and can be changed meanwhile.
  void go_down();
  // Back on the same address and port; the history is kept.
  void come_back();

  // Direct store access, thread-safe, bypassing authorization. `path` is an
  // object path as in the URL, e.g.
  // "/apis/tetherd.io/v1alpha1/namespaces/tetherd-system/edgenodes/node-a".
  // Writes bump resourceVersions and feed watches like requests do. Failures
  // (bad path, not found, already exists) throw std::runtime_error with the
  // Status message.
  boost::json::object create(const std::string& collection_path, boost::json::object object);
  std::optional<boost::json::object> get(const std::string& object_path) const;
  // A PUT without a resourceVersion: for types with a status subresource the
  // status is kept (use patch_status).
  boost::json::object update(const std::string& object_path, boost::json::object object);
  // A merge patch {"status": status} on the object's status.
  boost::json::object patch_status(const std::string& object_path, boost::json::object status);
  void remove(const std::string& object_path);
  std::uint64_t resource_version() const;

  // Observation, thread-safe.
  std::vector<RequestRecord> requests() const;
  // The pods evicted through the API ("NS/NAME"), in the order their
  // evictions were answered 201. To refuse evictions: a budget with
  // status.disruptionsAllowed 0 (the budget's 429), or misbehave() with
  // kStatus429 and path_contains "/eviction" (the flow control's 429).
  std::vector<std::string> evictions() const;
  std::size_t connections_accepted() const;
  std::size_t open_watches() const;
  std::size_t watches_started() const;  // every watch that got its 200, ever
  // Wait (condition variable) until at least n; false on timeout.
  bool wait_for_watches(std::size_t n, std::chrono::milliseconds timeout) const;
  bool wait_for_watch_starts(std::size_t n, std::chrono::milliseconds timeout) const;
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;
  bool wait_for_no_watches(std::chrono::milliseconds timeout) const;
  // Until at most `n` watches are open (one of them ended or was cut).
  bool wait_for_watches_at_most(std::size_t n, std::chrono::milliseconds timeout) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tetherd::test
