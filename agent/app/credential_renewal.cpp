#include "agent/app/credential_renewal.h"

#include <algorithm>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/adapters/csr.h"
#include "agent/adapters/x509.h"
#include "agent/core/client_cert.h"
#include "agent/core/duration.h"
#include "agent/core/kube_time.h"
#include "agent/core/node_csr.h"
#include "agent/core/node_status.h"

namespace tetherd {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

constexpr Duration kAtLeast = std::chrono::seconds(1);
// Between reads of a pending request whose watches the server keeps
// ending early: within kShortWatch (and half the time asked) of their start.
constexpr BackoffPolicy kRewatchBackoff{.base = std::chrono::seconds(1),
                                        .cap = std::chrono::minutes(5)};
constexpr Duration kShortWatch = std::chrono::seconds(10);
constexpr char kExpiredWhileWaiting[] = "the certificate in force expired while waiting";

std::string enroll_running(const CredentialPaths& paths) {
  return "tetherctl enroll is writing " + paths.dir + ": the renewal waits for it";
}

std::string csr_path(const std::string& name) {
  return std::string(kCsrCollection) + "/" + name;
}

// The life asked for in a renewal: the current certificate's, in whole
// seconds. One shorter than the API's minimum (10 minutes) was the
// signer's choice, not asked for: nothing is asked (zero), and the signer
// chooses again.
Duration life_of(const CertificateInfo& info) {
  const auto life =
      std::chrono::duration_cast<std::chrono::seconds>(info.not_after - info.not_before);
  return life < std::chrono::minutes(10) ? Duration::zero() : Duration(life);
}

std::optional<Duration> asked(Duration life) {
  return life > Duration::zero() ? std::optional<Duration>(life) : std::nullopt;
}

}  // namespace

std::string_view to_string(CredentialState state) {
  switch (state) {
    case CredentialState::kUnmanaged:
      return "NotRenewed";
    case CredentialState::kValid:
      return "CertificateValid";
    case CredentialState::kRenewalPending:
      return "RenewalPending";
    case CredentialState::kRenewalRefused:
      return "RenewalRefused";
    case CredentialState::kRenewalFailed:
      return "RenewalFailed";
    case CredentialState::kRenewalHeld:
      return "RenewalHeld";
    case CredentialState::kNotYetValid:
      return "CertificateNotYetValid";
    case CredentialState::kExpired:
      return "CertificateExpired";
  }
  return "Unknown";
}

CredentialRenewal::CredentialRenewal(asio::any_io_executor executor, const Clock& clock, Log& log,
                                     const NodeConditions& conditions, const Config& config,
                                     RenewalTiming timing)
    : executor_(std::move(executor)),
      clock_(clock),
      log_(log),
      conditions_(conditions),
      node_(config.node_name),
      paths_(credential_paths(config, {})),
      bootstrap_(config.control_plane ? config.control_plane->bootstrap_kubeconfig : ""),
      timing_(std::move(timing)),
      timer_(executor_, clock) {
  if (!timing_.random) timing_.random = seeded_unit_random();
  assess();
}

CredentialRenewal::~CredentialRenewal() {
  stop();
}

void CredentialRenewal::start() {
  ++running_;
  asio::co_spawn(executor_, run(), [this](std::exception_ptr e) {
    --running_;
    if (e) std::rethrow_exception(e);
  });
}

void CredentialRenewal::stop() {
  if (stopped_) return;
  stopped_ = true;
  timer_.cancel();
  // close(), not disconnect_all(): an answer already in when this runs
  // would otherwise carry the attempt on to its next request (the watch
  // after the GET), on a connection opened after the stop.
  if (http_ != nullptr) http_->close();
}

void CredentialRenewal::wake(bool resumed) {
  if (stopped_) return;
  // A resume cuts a backoff short (the network it waited for is back),
  // but not the wait after an admin's refusal: asking again at each resume
  // would be a request per resume against someone who said no.
  if (resumed && !refused_) retry_after_ = MonoTime{};
  // The attempt under way is cut: on a resume its connections died in the
  // sleep; on a change of the files (a new certificate, a clock put right)
  // it may be waiting for nothing. The next one judges the files as they
  // are and, if still due, waits for the same request. Not while the
  // request is being made (only a resume cuts that): a request cut there
  // may not exist, and the next attempt would wait for it.
  if (http_ != nullptr && (resumed || waiting_)) {
    interrupted_ = true;
    http_->disconnect_all();
  }
  woken_ = true;
  timer_.cancel();
}

void CredentialRenewal::clock_stepped() {
  if (stopped_) return;
  installed_unsynced_.clear();
  // An issued certificate refused by the old clock, which the new one
  // would take: not the backoff (up to an hour) before the next request,
  // but never more than one a minute, however often the clock is set.
  const WallTime now = clock_.wall();
  if (refused_window_ && refused_window_->first <= now && now < refused_window_->second) {
    refused_window_.reset();
    retry_after_ = std::min(retry_after_, last_attempt_ + timing_.backoff.base);
  }
  wake();
}

void CredentialRenewal::check_clock() {
  if (stopped_ || report_.usable || !report_.not_after || clock_.wall() >= *report_.not_after)
    return;
  wake();
}

void CredentialRenewal::set(CredentialReport report) {
  if (report == report_) return;
  report_ = std::move(report);
  if (listener_) listener_(report_);
}

CredentialReport CredentialRenewal::base(const CertificateInfo& current) const {
  CredentialReport r;
  r.subject = current.subject;
  r.not_after = current.not_after;
  return r;
}

std::string CredentialRenewal::fix_command(const Kubeconfig& k) const {
  std::string pin = "sha256:<the cloud CA's hash>";
  if (auto cas = x509::parse_certificates(k.ca_pem, k.path); cas && !cas->empty())
    pin = "sha256:" + x509::describe(cas->front()).spki_sha256;
  return "tetherctl enroll --server " + k.server + " --ca-cert-hash " + pin +
         " --token-file FILE (a token from: kubectl -n tetherd-system create token "
         "tetherd-bootstrap)";
}

CredentialRenewal::Assessment CredentialRenewal::assess() {
  Assessment a;
  a.wait = timing_.recheck;
  if (const CredentialsLock lock(paths_.dir); lock.locked()) finish_install(paths_);
  auto k = load_kubeconfig(paths_.kubeconfig);
  const auto& files = k ? k->files : std::vector<std::string>{};
  const bool managed = std::find(files.begin(), files.end(), paths_.certificate) != files.end() &&
                       std::find(files.begin(), files.end(), paths_.key) != files.end();
  if (!managed) {
    CredentialReport r;
    r.message = k ? paths_.kubeconfig + " does not use " + paths_.certificate + " and " +
                        paths_.key + ": its certificate is renewed by whoever wrote it"
                  : k.error().message;
    set(std::move(r));
    return a;
  }
  auto certs = x509::parse_certificates(k->client_cert_pem, paths_.certificate);
  if (!certs) {  // a change of the file wakes this
    CredentialReport r;
    r.message = certs.error().message;
    set(std::move(r));
    return a;
  }
  a.current = x509::describe(certs->front());
  if (a.current.subject_cn != node_user(node_)) {
    CredentialReport r = base(a.current);
    r.message = paths_.certificate + " is for " + a.current.subject_cn + ", not " +
                node_user(node_) + " (node.name): not renewed; enroll this node";
    set(std::move(r));
    return a;
  }
  if (a.current.serial_hex != serial_) {
    serial_ = a.current.serial_hex;
    draw_ = timing_.random();
  }
  const WallTime now = clock_.wall();
  const WallTime renew_at = renewal_point(a.current.not_before, a.current.not_after, draw_);
  // A clock known to be wrong still renews, once: a certificate this
  // renewal installed while it was wrong, and that looks due at once, says
  // the clock is what is wrong, and is not renewed again until it is
  // synchronized (a clock years ahead would otherwise renew without end).
  const Condition* clock_ok = conditions_.find(condition_type::kClockSynchronized);
  const bool synced = clock_ok == nullptr || clock_ok->status != ConditionStatus::kFalse;
  if (synced) installed_unsynced_.clear();
  const bool may = synced || a.current.serial_hex != installed_unsynced_;
  const ClientCertVerdict v =
      judge_client_cert(now, a.current.not_before, a.current.not_after, renew_at, may);
  CredentialReport r = base(a.current);
  r.renew_at = renew_at;
  r.message = v.message;
  const bool backing_off = clock_.monotonic() < retry_after_;
  switch (v.state) {
    case ClientCertState::kValid:
      r.state = CredentialState::kValid;
      a.wait = std::clamp<Duration>(std::chrono::duration_cast<Duration>(renew_at - now), kAtLeast,
                                    timing_.recheck);
      set(std::move(r));
      return a;
    case ClientCertState::kNotYetValid:
      r.state = CredentialState::kNotYetValid;
      r.message += ": check the clock (timedatectl)";
      set(std::move(r));
      return a;
    case ClientCertState::kRenewDue:
      // In force (a clock put right may bring one back from "expired").
      if (!report_.usable || report_.state == CredentialState::kNotYetValid) {
        r.state = CredentialState::kValid;
        set(r);
      }
      if (!v.renew) {
        r.state = CredentialState::kRenewalHeld;
        r.message +=
            "; renewed once already while the clock is not synchronized: not again "
            "until it is (ClockSynchronized)";
        set(std::move(r));
        return a;
      }
      break;
    case ClientCertState::kExpired:
      r.state = CredentialState::kExpired;
      r.usable = false;
      if (!v.renew) {
        r.message += "; not used";
        set(std::move(r));
        return a;
      }
      r.message +=
          "; not used. " +
          (bootstrap_.empty() ? "Enroll the node again: " + fix_command(*k) +
                                    " (or set controlPlane.bootstrapKubeconfig to renew by itself)"
                              : "Renewing with controlPlane.bootstrapKubeconfig " + bootstrap_);
      break;
  }
  a.kubeconfig = std::move(*k);
  if (backing_off) {
    // The last attempt's report stands until the backoff ends (or the
    // certificate expires meanwhile).
    const bool refused_or_failed = report_.state == CredentialState::kRenewalRefused ||
                                   report_.state == CredentialState::kRenewalFailed;
    if (r.state == CredentialState::kExpired && report_.state != CredentialState::kExpired) {
      set(std::move(r));
    } else if (r.state != CredentialState::kExpired && !refused_or_failed) {
      // Just renewed, and due again at once (a signer that issues
      // certificates far shorter than their backdating): not a storm.
      r.state = CredentialState::kValid;
      r.message +=
          "; just renewed, and due again at once (a signer's short lives or "
          "backdating, or the clock): the next request waits";
      set(std::move(r));
    }
    a.wait = std::min<Duration>(retry_after_ - clock_.monotonic(), timing_.recheck);
    return a;
  }
  if (r.state == CredentialState::kExpired) {
    const bool said = report_.state == CredentialState::kExpired;
    set(r);
    if (!said) log_.error("credentials-expired", r.message, {{"KUBECONFIG", paths_.kubeconfig}});
    if (bootstrap_.empty()) return a;
    a.action = Action::kRecover;
    return a;
  }
  a.action = Action::kRenew;
  return a;
}

awaitable<void> CredentialRenewal::run() {
  while (!stopped_) {
    woken_ = false;
    Assessment a = assess();
    // Never past the certificate's expiry, whatever is waited for: it is
    // said (and not used) from that moment.
    const WallTime now = clock_.wall();
    Duration wait =
        a.current.not_after > now
            ? std::min<Duration>(
                  a.wait,
                  std::chrono::duration_cast<Duration>(a.current.not_after - now) + kAtLeast)
            : a.wait;
    if (a.action == Action::kRenew) {
      wait = co_await renew(*a.kubeconfig, a.current, "its current certificate");
    } else if (a.action == Action::kRecover) {
      auto boot = load_kubeconfig(bootstrap_);
      if (!boot) {
        wait = failed(CredentialState::kExpired,
                      report_.message + "; but controlPlane.bootstrapKubeconfig cannot be used: " +
                          boot.error().message,
                      a.current);
      } else if (boot->ca_pem.empty()) {
        wait = failed(CredentialState::kExpired,
                      report_.message + "; but controlPlane.bootstrapKubeconfig " + bootstrap_ +
                          " names no certificate-authority: its token would go to any server "
                          "the system's web CAs vouch for; add the cloud's CA to it",
                      a.current);
      } else if (!same_server(boot->server, a.kubeconfig->server)) {
        wait = failed(CredentialState::kExpired,
                      report_.message + "; but controlPlane.bootstrapKubeconfig is for " +
                          boot->server + ", not " + a.kubeconfig->server,
                      a.current);
      } else {
        wait = co_await renew(*boot, a.current, "the bootstrap credential " + bootstrap_);
      }
    }
    if (stopped_) break;
    if (woken_) continue;  // a change while renewing: look again now
    timer_.expires_after(std::max(wait, Duration::zero()));
    co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

// kube-controller-manager deletes an issued request an hour after its
// approval; the approval comes after the asking.
constexpr Duration kCollectedAfter = std::chrono::hours(1);

Duration CredentialRenewal::failed(CredentialState state, const std::string& message,
                                   const CertificateInfo& current, bool may_pass) {
  // A resume cut the attempt's connections: again, now (a refusal is an
  // answer, and counts).
  const bool answer = state == CredentialState::kRenewalRefused;
  if (std::exchange(interrupted_, false) && !answer) return Duration::zero();
  refused_ = answer;
  ++failures_;
  // With the certificate expired the node is cut off until a request gets
  // through: a failure that may pass by itself (the network, the server's
  // load) is tried again sooner; not a refusal, a token the server does not
  // take, or a file that is wrong.
  const bool cut_off = may_pass && !answer && clock_.wall() >= current.not_after;
  const BackoffPolicy& policy = cut_off ? timing_.cut_off_backoff : timing_.backoff;
  const Duration delay =
      std::max(policy.base, full_jitter(policy, failures_ - 1, timing_.random()));
  retry_after_ = clock_.monotonic() + delay;
  CredentialReport r = base(current);
  r.renew_at = report_.renew_at;
  r.state = state;
  // Expired by now, whatever it was when the attempt began.
  if (clock_.wall() >= current.not_after) r.state = CredentialState::kExpired;
  r.usable = r.state != CredentialState::kExpired;
  r.message = message + "; next try in " + format_duration(delay);
  log_.warning(answer ? "credentials-renewal-refused" : "credentials-renewal-failed", r.message,
               {{"KUBECONFIG", paths_.kubeconfig}});
  set(std::move(r));
  return delay;
}

awaitable<Duration> CredentialRenewal::renew(const Kubeconfig& with, const CertificateInfo& current,
                                             const std::string& via) {
  last_attempt_ = clock_.monotonic();
  // A wake that cut the last attempt after its answer was in never reached
  // failed(): it says nothing of this one.
  interrupted_ = false;
  refused_window_.reset();  // this attempt's refusal, if any, says
  // Judged now, not from the last report: a clock put right may have
  // brought an "expired" certificate back into its life.
  const bool expired = clock_.wall() >= current.not_after;
  const CredentialState trouble =
      expired ? CredentialState::kExpired : CredentialState::kRenewalFailed;
  const std::string prefix = expired ? report_.message + "; " : std::string();
  auto made = timing_.connect ? timing_.connect(with)
                              : kube::HttpsClient::create(executor_, with, timing_.limits);
  if (!made)
    co_return failed(trouble,
                     prefix + "cannot renew with " + via + ": " + kube::describe(made.error()),
                     current);
  std::unique_ptr<kube::HttpsClient> http = std::move(*made);
  http_ = http.get();
  struct Clear {
    kube::HttpsClient*& p;
    ~Clear() { p = nullptr; }
  } clear{http_};
  kube::KubeClient kube(*http);
  const std::string user = node_user(node_);

  // The files are written under the lock (enroll holds it for its whole
  // run); not while the request is waited for.
  auto lock = std::make_optional<CredentialsLock>(paths_.dir);
  if (!lock->locked()) co_return failed(trouble, prefix + enroll_running(paths_), current);
  std::optional<PendingRequest> pending = read_pending(paths_);
  if (pending && (pending->node != node_ || !same_server(pending->server, with.server))) {
    forget_pending(paths_);
    pending.reset();
  }
  if (!pending) {
    auto request = make_client_request(user, {std::string(kNodesGroup)});
    if (!request) co_return failed(trouble, prefix + request.error().message, current);
    PendingRequest next{csr_name(node_, clock_.wall()), with.server, node_,
                        x509::to_pem(request->key)};
    // Kept before it is sent: a request the server may have received
    // (an answer lost, a stop, a resume) is looked for next time, not
    // asked for again.
    if (auto r = save_pending_key(paths_, next.key_pem); !r)
      co_return failed(trouble, prefix + r.error().message, current);
    if (auto r = save_pending_name(paths_, next); !r)
      co_return failed(trouble, prefix + r.error().message, current);
    auto created = co_await kube.create(
        kCsrCollection, csr_object(node_, next.name, request->csr_pem, asked(life_of(current))));
    if (stopped_) co_return Duration::zero();
    // 409: it was made (by an earlier try of this one request); waited for.
    if (!created && !created.error().conflict()) {
      // Refused (a 4xx but 429): not made, forgotten. A 5xx, a 429 or no
      // answer: it may have been made, and is looked for next time.
      const kube::ApiError& e = created.error();
      if (e.kind == kube::ErrorKind::kHttp && e.code >= 400 && e.code < 500 && e.code != 429)
        forget_pending(paths_);
      co_return failed(trouble,
                       prefix + "cannot ask for a new certificate with " + via + ": " +
                           kube::describe(created.error()),
                       current, e.retryable());
    }
    pending = std::move(next);
    seen_name_ = pending->name;  // made (201), or made before (409)
    asked_at_ = std::make_pair(pending->name, clock_.boottime());
    log_.notice("credentials-renewal-requested",
                "asked for a new client certificate with " + via + ": CertificateSigningRequest " +
                    pending->name + " (the one in force expires at " +
                    format_kube_time(current.not_after) +
                    "); an admin approves it with: " + approve_command(pending->name),
                {{"CSR", pending->name}});
  }
  lock.reset();
  CredentialReport waiting = base(current);
  waiting.renew_at = report_.renew_at;
  waiting.state = expired ? CredentialState::kExpired : CredentialState::kRenewalPending;
  waiting.usable = !expired;
  waiting.csr = pending->name;
  waiting.message = (expired ? report_.message + "; " : std::string()) +
                    "waiting for CertificateSigningRequest " + pending->name +
                    " to be approved and issued (" + approve_command(pending->name) +
                    "); the certificate in force expires at " + format_kube_time(current.not_after);
  set(std::move(waiting));

  waiting_ = true;
  auto status =
      co_await wait_for(kube, *http, pending->name, expired ? WallTime::max() : current.not_after);
  waiting_ = false;
  if (stopped_) co_return Duration::zero();
  if (!status && status.error().message == kExpiredWhileWaiting)
    co_return Duration::zero();  // judged again now: expired, recovered with what can
  if (!status && !status.error().not_found())
    co_return failed(
        trouble, prefix + "cannot follow " + pending->name + ": " + kube::describe(status.error()),
        current, status.error().retryable());
  // From here the request's files are used or forgotten: still ours? (An
  // enroll run meanwhile may have replaced or installed it.)
  lock.emplace(paths_.dir);
  if (!lock->locked()) co_return failed(trouble, prefix + enroll_running(paths_), current);
  if (auto now = read_pending(paths_); !now || now->name != pending->name) {
    log_.info("credentials-renewal-superseded",
              pending->name + " is no longer this node's request (tetherctl enroll replaced it)",
              {{"CSR", pending->name}});
    co_return Duration::zero();  // the files judged again as they are now
  }
  if (!status) {
    forget_pending(paths_);
    // Never read: a create whose answer was lost (a 5xx, no answer) did
    // not make it after all. That create backed off already.
    if (seen_name_ != pending->name) {
      log_.info("credentials-renewal-gone",
                pending->name + " was never made (its create was not answered): asking again now",
                {{"CSR", pending->name}});
      co_return Duration::zero();
    }
    const std::string gone = pending->name +
                             " is gone: deleted, or removed by the cluster (an issued request is "
                             "kept about an hour) while this node could not fetch it";
    // Most often the node slept through its hour: asked again at once,
    // not after a backoff (with the certificate expired, the node would
    // stay cut off for it). Gone again before anything was installed, and
    // within the hour of its asking (boottime: sleeps count), which is no
    // cleaner's doing (an admin deleting the requests): the backoff.
    const bool collected = asked_at_ && asked_at_->first == pending->name &&
                           clock_.boottime() - asked_at_->second >= kCollectedAfter;
    if (collected || !std::exchange(gone_, true)) {
      log_.notice("credentials-renewal-gone", gone + ": asking again now",
                  {{"CSR", pending->name}});
      co_return Duration::zero();
    }
    co_return failed(trouble, prefix + gone, current);
  }
  using State = CsrStatus::State;
  const Condition* clock_ok = conditions_.find(condition_type::kClockSynchronized);
  const bool unsynced = clock_ok != nullptr && clock_ok->status == ConditionStatus::kFalse;
  // `clocks`: refused by this node's clock alone (issued "expired" or "not
  // yet valid" by it). With the clock known to be wrong, such a refusal is
  // not asked again until the clock is synchronized or stepped. Any other
  // (an admin's denial, the signer's failure, a wrong certificate) says
  // nothing of the clock, and the backoff alone spaces the next request: held
  // on a node without NTP, one denial would outlast the certificate.
  auto refused = [&](const std::string& why, bool clocks = false) {
    forget_pending(paths_);
    if (unsynced && clocks) installed_unsynced_ = current.serial_hex;
    return failed(CredentialState::kRenewalRefused,
                  prefix + why + "; the certificate in force is kept", current);
  };
  if (status->state == State::kDenied || status->state == State::kFailed)
    co_return refused(pending->name + " was " +
                      (status->state == State::kDenied ? "denied" : "refused by the signer") +
                      (status->reason.empty() ? "" : " (" + status->reason + ")") +
                      (status->message.empty() ? "" : ": " + status->message));
  // Issued: checked whole before anything is written.
  const std::string what = "the certificate issued for " + pending->name;
  auto certs = x509::parse_certificates(status->certificate_pem, what);
  if (!certs) co_return refused(certs.error().message);
  auto key = x509::parse_private_key(pending->key_pem, paths_.next_key);
  if (!key) co_return refused(key.error().message);
  const CertificateInfo info = x509::describe(certs->front());
  const bool key_ok = x509::key_matches(certs->front(), *key);
  if (auto ok = check_issued(info, key_ok, {user, life_of(current)}, clock_.wall()); !ok) {
    // Refused by this node's clock alone (right within its own life): a
    // step of the clock into that life makes it worth asking again soon.
    const bool clocks =
        check_issued(info, key_ok, {user, life_of(current)}, info.not_before).has_value();
    if (clocks) refused_window_ = std::make_pair(info.not_before, info.not_after);
    co_return refused(what + " is refused: " + ok.error().message, clocks);
  }
  if (auto r = install_issued(paths_, *pending, status->certificate_pem); !r)
    co_return failed(trouble, prefix + r.error().message, current);
  failures_ = 0;
  refused_ = false;
  gone_ = false;
  refused_window_.reset();
  // Due already (past its earliest renewal point) the moment it arrives: a
  // signer that backdates far, or issues for less than that, or a clock
  // that is wrong. Not renewed in a loop: the next request waits half of
  // what is left of it (at least a minute); with the clock known to be
  // wrong, until the clock is synchronized.
  Duration next = timing_.backoff.base;
  if (clock_.wall() >= renewal_point(info.not_before, info.not_after, 0.0)) {
    next = std::max(next, std::chrono::duration_cast<Duration>(info.not_after - clock_.wall()) / 2);
    if (unsynced) installed_unsynced_ = info.serial_hex;
  }
  retry_after_ = clock_.monotonic() + next;
  log_.notice("credentials-renewed",
              "the client certificate was renewed (" + pending->name + ", with " + via +
                  "): serial " + info.serial_hex + ", valid until " +
                  format_kube_time(info.not_after) +
                  "; new connections use it, the old key is removed",
              {{"CSR", pending->name}});
  // The new files judged now, so that the report (and the session waiting
  // for a usable certificate) moves before the file events arrive.
  assess();
  co_return Duration::zero();
}

awaitable<kube::ApiResult<CsrStatus>> CredentialRenewal::wait_for(kube::KubeClient& kube,
                                                                  kube::HttpsClient& http,
                                                                  const std::string& name,
                                                                  WallTime until) {
  using State = CsrStatus::State;
  auto final = [](const CsrStatus& s) {
    return s.state != State::kPending && s.state != State::kApproved;
  };
  auto decoded = [](const boost::json::object& o) -> kube::ApiResult<CsrStatus> {
    auto s = decode_csr_status(o);
    if (!s) return kube::make_api_error(kube::ErrorKind::kDecode, s.error().message);
    return *s;
  };
  unsigned cut_short = 0;  // watches in a row the server ended early
  while (!stopped_) {
    // The certificate in force expires first: stop waiting with it, so
    // that its expiry is said and the recovery starts (the request is
    // kept, and waited for again with what can still ask).
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(until - clock_.wall());
    if (left <= std::chrono::seconds::zero())
      co_return kube::make_api_error(kube::ErrorKind::kTimeout, kExpiredWhileWaiting);
    auto got = co_await kube.get(csr_path(name));
    if (!got) co_return got.error();
    seen_name_ = name;
    auto status = decoded(*got);
    if (!status || final(*status)) co_return status;
    // Pending (or approved, the signer to come): watched from its current
    // state, which the server sends first (an ADDED event), not from the
    // object's resourceVersion: that is as old as its last change, which
    // kube-apiserver forgets within minutes, and a watch from it would end
    // at once in 410 Gone, to be read and watched again a second later for
    // as long as the request waits for an admin (issue 23's node
    // simulation found it).
    std::optional<kube::ApiResult<CsrStatus>> seen;
    kube::WatchOptions options;
    options.field_selector = "metadata.name=" + name;
    // Drawn between the timeout and twice it, as a Reflector's: nodes
    // whose renewals began together (a cloud back after an outage) do not
    // all end their watches and read again together.
    const auto drawn = std::chrono::seconds(static_cast<std::chrono::seconds::rep>(
        static_cast<double>(timing_.watch_timeout.count()) * (1.0 + timing_.random())));
    options.timeout = std::clamp<std::chrono::seconds>(left, std::chrono::seconds(1),
                                                       std::max(drawn, std::chrono::seconds(1)));
    const MonoTime began = clock_.monotonic();
    auto end = co_await kube.watch(kCsrCollection, options, [&](const kube::WatchEvent& e) {
      if (seen || e.type == kube::WatchEventType::kBookmark) return;
      // Ours only, should a server not honour the field selector.
      const auto* metadata = e.object.if_contains("metadata");
      const auto* n = metadata != nullptr && metadata->is_object()
                          ? metadata->as_object().if_contains("name")
                          : nullptr;
      if (n == nullptr || !n->is_string() || n->as_string() != name) return;
      if (e.type == kube::WatchEventType::kDeleted) {
        seen = kube::ApiError{kube::ErrorKind::kHttp, 404, "NotFound", name + " was deleted",
                              std::nullopt};
      } else {
        auto s = decoded(e.object);
        if (!s || final(*s)) seen = std::move(s);
      }
      if (seen) http.disconnect_all();  // the watch has told what it had to
    });
    if (seen) co_return std::move(*seen);
    if (!end) co_return end.error();
    if (stopped_) break;
    // The server ended the watch (its timeout, or 410): read it again, but
    // not in a loop with a server that ends every watch early (410 on
    // every watch through a fault of hours: a read and a watch a second,
    // issue 23's node simulation found): a watch cut short waits, more
    // each time in a row (full jitter, up to kRewatchBackoff's cap), as a
    // Reflector backs off; never past the certificate's end (then said at
    // once). On the loop's timer (idle while an attempt runs), which stop()
    // and wake() cancel; a wake (a new certificate on disk, a clock put
    // right, a resume) ends the attempt, for the files to be judged again.
    const Duration lasted = clock_.monotonic() - began;
    if (lasted < std::min<Duration>(std::chrono::duration_cast<Duration>(options.timeout) / 2,
                                    kShortWatch)) {
      Duration pause =
          std::max(kAtLeast, full_jitter(kRewatchBackoff, cut_short++, timing_.random()));
      if (until != WallTime::max())
        pause = std::min(
            pause, std::max(kAtLeast, std::chrono::duration_cast<Duration>(until - clock_.wall()) +
                                          kAtLeast));
      // (A wake that came as the watch ended had no pause to cut.)
      if (!interrupted_) {
        timer_.expires_after(pause);
        co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      if (interrupted_)
        co_return kube::make_api_error(kube::ErrorKind::kTransport,
                                       "woken while waiting between watches");
    } else {
      cut_short = 0;
    }
  }
  co_return kube::make_api_error(kube::ErrorKind::kTransport, "stopped");
}

}  // namespace tetherd
