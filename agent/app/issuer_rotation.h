#pragma once
// linkerd's identity issuer, kept valid on a node that sleeps. One pass:
//
//   read    ConfigMap linkerd-identity-trust-roots and Secret
//           linkerd-identity-issuer from the local k3s;
//   judge   core/issuer_policy.h, against the wall clock (never a timer:
//           Asio's stop while the machine sleeps);
//   mint    a new issuer signed by the trust anchor key, a local file
//           (linkerd.trustAnchorKey), refused if group or world readable,
//           and only if it belongs to a root of the bundle;
//   write   the Secret in one PUT carrying the resourceVersion read: a 409
//           Conflict means someone else wrote it, so read and judge again;
//   confirm the identity controller's IssuerUpdated event, newer than the
//           write and not an earlier write's, or else restart
//           deploy/linkerd-identity as `kubectl rollout restart` does
//           (confirm_reload()).
//
// It never invents trust anchors: they are shared by every linked cluster,
// so an expiring or expired anchor is reported, not replaced.
//
// From the cloud (use_cloud(), spec.linkerd's references): the issuer is
// never minted here (the anchor key stays in the cloud); the cloud's issuer
// Secret, checked whole (adapters/linkerd_supply.h) against the trust bundle
// that will be in force, is written over the local one when it differs; the
// cloud's trust bundle is written into the local ConfigMap when it differs
// and still holds the root of the issuer that will be in force (unless the
// reference says the rotation is finishing). The issuer must chain to the
// bundle in k3s: one under a root that only the incoming bundle holds is
// taken by the pass right after the bundle is written. Each write
// carries the resourceVersion read; what cannot be taken is said, and what
// is in force stays.
// A Secret that cert-manager manages (its annotation says so) is left to
// cert-manager: two rotators would fight.
//
// The triggers (start, resume, hourly, spec.linkerd.rotate, tetherctl, a
// step of the wall clock) are
// the caller's; passes never overlap (request() queues one more).

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "agent/adapters/x509.h"
#include "agent/app/cloud_linkerd.h"
#include "agent/config/config.h"
#include "agent/core/backoff.h"
#include "agent/core/certificate.h"
#include "agent/core/clock.h"
#include "agent/core/issuer_policy.h"
#include "agent/core/linkerd_objects.h"
#include "agent/core/log.h"
#include "agent/core/timer.h"
#include "agent/kube/kube_client.h"

namespace tetherd {

enum class RotationTrigger {
  kStart,
  kResume,
  kPeriodic,
  kToken,
  kManual,
  kCloud,
  kClockStep,
  kClockWitness,
  kRetry
};
std::string_view to_string(RotationTrigger trigger);  // "start", "resume", ...

// What a read found, judged.
struct IssuerReport {
  IssuerVerdict verdict;
  std::optional<CertificateInfo> issuer;
  std::vector<CertificateInfo> anchors;
  std::optional<IssuerLayout> layout;
  bool managed_elsewhere = false;  // cert-manager's Secret: report only
  // The local trust bundle's hash (linkerd.io/trust-root-sha256's), "" when
  // it could not be read.
  std::string bundle_sha256;
};

struct RotationResult {
  RotationTrigger trigger = RotationTrigger::kStart;
  IssuerReport before;   // the judgement acted on
  bool rotated = false;  // a new issuer was written
  std::optional<CertificateInfo> issued;
  // After a mint here: the judgement of the issuer written, under the
  // anchor that signed it (nullopt when nothing was minted).
  std::optional<IssuerVerdict> after;
  // When the write was sent, not when its answer came: the identity
  // controller may say IssuerUpdated before a slow answer arrives.
  WallTime written_at{};
  std::string error;  // why nothing was written when it should have been
  std::size_t conflicts = 0;
  std::string token;  // request()'s token: the spec.linkerd.rotate this pass answers
  // From the cloud: whether the pass took the cloud's objects, wrote its
  // trust bundle, and the local bundle's hash after the pass.
  bool from_cloud = false;
  bool bundle_written = false;
  std::string bundle_sha256;
  bool pass_again = false;  // the cloud's issuer waits for the bundle just written
  // Gave way, after waiting for the clock's witness, to a pass queued
  // meanwhile, which takes over its force and token (not reported).
  bool deferred = false;
  // The pass had the cloud's answer for every object the EdgeNode names
  // (present or not): before that, a pass that says nothing has taken
  // nothing, and answers no spec.linkerd.rotate.
  bool cloud_read = false;
  // The Secret's write failed in a way that may have taken (its answer
  // lost: a deadline, a dropped connection, a 5xx): the next pass looks.
  bool answer_lost = false;
  // An earlier write whose answer was lost, found in the Secret by this
  // pass: when it was sent (serve() confirms the identity controller
  // loaded it, as after a write answered).
  std::optional<WallTime> found_written;
  std::string found_serial;  // and the serial of the issuer it wrote
  // The spec.linkerd.rotate that found write was for ("" for none): it
  // answers that token, not another this pass carried.
  std::string found_token;
  // A call to k3s failed in a way that passes (refused, a deadline, a
  // 5xx, a 429): serve() runs the pass again after a short backoff
  // (IssuerRotationTiming::retry), not at the caller's next hourly one.
  bool k3s_unanswered = false;
  // The longest Retry-After k3s sent with those failures (a 429 from its
  // API priority and fairness, a 503): the retry waits at least that long.
  // (That of an unanswered restart, made after the result is reported,
  // is the retry's, not in the result heard.)
  std::optional<Duration> k3s_retry_after;
};

// kUnanswered: no IssuerUpdated, and k3s did not answer the restart (down,
// stalled, a 5xx): the daemon's rotation makes sure again at its next pass.
enum class ReloadOutcome { kConfirmed, kRestarted, kFailed, kUnanswered };

struct IssuerRotationTiming {
  // How long the identity controller gets to say IssuerUpdated before its
  // Deployment is restarted. It reloads when kubelet refreshes the mounted
  // Secret, which takes up to a minute and a half.
  Duration confirm_timeout = std::chrono::seconds(120);
  Duration confirm_poll = std::chrono::seconds(5);
  std::size_t max_conflicts = 3;
  // A pass k3s did not answer (k3s restarting, stalled, overloaded) runs
  // again after a delay in [ceiling/2, ceiling), the ceiling doubling from
  // base to cap: an issuer that expired while k3s was down is renewed
  // minutes after it answers again, not at the next hourly pass.
  BackoffPolicy retry{.base = std::chrono::minutes(1), .cap = std::chrono::minutes(5)};
  std::function<double()> random;  // [0, 1); seeded from entropy when empty
};

class IssuerRotation {
 public:
  IssuerRotation(boost::asio::io_context& io, kube::KubeClient& cluster, const Clock& clock,
                 Log& log, LinkerdConfig config, IssuerRotationTiming timing = {});

  // Read and judge; writes nothing.
  boost::asio::awaitable<IssuerReport> check();
  // Read, judge, and rotate when the judgement says so (or `force`, for
  // `tetherctl certs rotate`, whatever the issuer's state, though never
  // under an expired anchor or over a Secret it cannot read).
  boost::asio::awaitable<RotationResult> run(RotationTrigger trigger, bool force = false);
  // After a write at `written_at`: wait for IssuerUpdated (not one that
  // confirmed an earlier write), else restart.
  boost::asio::awaitable<ReloadOutcome> confirm_reload(WallTime written_at);

  // The daemon's side: request() runs a pass (and the reload confirmation)
  // on the loop, one at a time; a request during a pass queues one more.
  // `token` travels to the result, so the caller knows which
  // spec.linkerd.rotate a pass answered.
  void request(RotationTrigger trigger, bool force = false, std::string token = {});
  void stop();
  // What the cloud supplies now; a change a pass would act on runs one
  // (trigger kCloud) unless `pass` is false (the caller runs one), and is
  // what it returns. A follower's new error message alone is no such
  // change (see differs_for_a_pass).
  bool use_cloud(CloudLinkerd cloud, bool pass = true);
  const CloudLinkerd& cloud() const { return cloud_; }
  // The settings it was made with (a reload makes another IssuerRotation).
  const LinkerdConfig& config() const { return config_; }
  // The node's wall clock minus the control plane's, when known (the
  // daemon's ClockWitness). Beyond kClockTolerance nothing is minted (its
  // dates would be wrong); within it, a not-yet-valid issuer is known to be
  // from a clock that was ahead, and is replaced.
  // `first_word_within`: the witness is about to speak (the daemon starts
  // with a control plane to ask), so a mint in that window, with nothing
  // heard yet, waits for its first word (or the window's end) and reads
  // and judges again: a node without a battery-backed clock boots with the
  // time saved at shutdown, and its first pass is the one most likely to
  // mint with a wrong clock. Judged on CLOCK_BOOTTIME.
  void use_clock_witness(std::function<std::optional<Duration>()> error,
                         Duration first_word_within = Duration::zero()) {
    clock_error_ = std::move(error);
    witness_until_ = clock_.boottime() + first_word_within;
  }
  // Hears every pass's result.
  void on_result(std::function<void(const RotationResult&)> listener) {
    listener_ = std::move(listener);
  }
  const std::optional<RotationResult>& last() const { return last_; }
  // The last pass left a not-yet-valid issuer in place (the clock may be
  // behind, and no word of the control plane's said otherwise).
  bool left_from_the_future() const {
    return last_ && !last_->rotated && last_->before.verdict.issuer == IssuerState::kNotYetValid;
  }
  bool busy() const { return busy_; }
  // Passes in a row k3s did not answer: a retry is armed while above 0.
  unsigned retries() const { return retries_; }

 private:
  struct Read;
  boost::asio::awaitable<Read> read();
  IssuerReport judge(const Read& read) const;
  IssuerVerdict verdict_of(IssuerFacts facts) const;
  boost::asio::awaitable<RotationResult> take_from_cloud(RotationTrigger trigger);
  boost::asio::awaitable<RotationResult> mint(RotationTrigger trigger, bool force);
  bool anchor_key_in(const std::vector<x509::Certificate>& roots) const;
  boost::asio::awaitable<RotationResult> mint_pass(RotationTrigger trigger, bool force);
  // After a read: whether the Secret holds the issuer of a write whose
  // answer was lost (into result.found_written), forgotten once known.
  void look_for_lost_write(const Read& read, RotationResult& result);
  // A call k3s did not answer: k3s_unanswered, and its Retry-After kept.
  static void unanswered(const kube::ApiError& error, RotationResult& result);
  // `based_on`: the Secret's resourceVersion the write carried.
  void lost_answer(const kube::ApiError& error, const CertificateInfo& issuer, WallTime sent,
                   std::string based_on, RotationResult& result);
  boost::asio::awaitable<void> serve();
  // After a pass: a retry armed when k3s did not answer it, else none.
  struct Request;
  void arm_retry(const RotationResult& result, const Request& pass);
  boost::asio::awaitable<void> pause(Duration delay);
  void report(const RotationResult& result);

  boost::asio::io_context& io_;
  kube::KubeClient& cluster_;
  const Clock& clock_;
  Log& log_;
  LinkerdConfig config_;
  IssuerRotationTiming timing_;
  Timer timer_;
  Timer retry_timer_;
  unsigned retries_ = 0;  // passes in a row k3s did not answer
  bool busy_ = false;
  bool stopped_ = false;
  struct Request {
    RotationTrigger trigger;
    bool force;
    std::string token;
    bool after_lost_answer = false;  // queued to look for a write whose answer was lost
  };
  std::optional<Request> queued_;
  std::optional<Request> retry_for_;  // the token the armed retry is for
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  std::optional<RotationResult> last_;
  std::string last_reason_;  // the condition's reason last logged
  std::function<void(const RotationResult&)> listener_;
  CloudLinkerd cloud_;
  std::function<std::optional<Duration>()> clock_error_;
  MonoTime witness_until_{};  // see use_clock_witness
  struct LostWrite {
    std::string serial;  // of the issuer written
    WallTime sent;
    // The Secret's resourceVersion it was based on: while the Secret is
    // still at it, a write k3s commits late (a 504 while etcd is slow) may
    // yet land, so it is not forgotten.
    std::string based_on;
    std::string token;  // the spec.linkerd.rotate it answers, once found
  };
  // Every write whose answer was lost and which may yet be in the Secret,
  // the latest last. Not only the latest: a write of a pass that looked
  // before the one before it landed is refused (409) once that one lands,
  // and that one is what the identity controller must load (the issuer's
  // year: a deaf controller through a stall of writes). One found stays
  // until serve() has made sure of it; those based on what it replaced
  // are forgotten, those based on it may still land.
  std::deque<LostWrite> lost_writes_;
  // The Events that confirmed the last writes (name@resourceVersion: a
  // recurring Event counted again is new): the controller's answer to the
  // write before, stamped in the same second as this one, was taken for
  // this one's too (issue 23's issuer year, seeds 211 and 238).
  static constexpr std::size_t kAnswers = 8;
  std::deque<std::string> answers_;
  static constexpr std::size_t kLostWrites = 4;
  // The Retry-After of the reload's call k3s did not answer.
  std::optional<Duration> reload_retry_after_;
};

}  // namespace tetherd
