// The EdgeNode's status written: at once when it changes, and an unchanged
// one (its vitals aside) every 5 minutes or health interval, the longer
// (core/node_status.h's StatusPublisher decides), by merge patch; the
// EdgeNode created when it is missing.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>

#include "agent/app/tether.h"

namespace tetherd {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;

awaitable<void> Tether::write_status_loop() {
  // How long a write waits for a firewall apply in flight, so that it
  // carries the apply's outcome: nftables takes milliseconds (one write, as
  // before), ufw minutes (written meanwhile as Applying).
  constexpr Duration kApplyWait = std::chrono::seconds(2);
  std::optional<Duration> apply_began;
  while (!stopped_) {
    status_poked_ = false;
    if (connected() && firewall_.busy()) {
      const Duration now = clock_.monotonic();
      if (!apply_began) apply_began = now;
      if (now - *apply_began < kApplyWait) {
        // The apply's end pokes this loop.
        status_timer_.expires_after(kApplyWait - (now - *apply_began));
        co_await status_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
    } else {
      apply_began.reset();
    }
    if (connected()) co_await write_status();
    if (stopped_) break;
    if (status_poked_) continue;  // something changed while writing
    status_timer_.expires_after(health_interval_);
    co_await status_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

awaitable<void> Tether::create_edge_node() {
  json::array sources;
  for (const auto& s : firewall_.in_force().sources)
    sources.emplace_back(s);
  json::object firewall{{"allowedSources", std::move(sources)}};
  if (!firewall_.in_force().ports.empty()) {
    json::array ports;
    for (auto p : firewall_.in_force().ports)
      ports.emplace_back(p);
    firewall["ports"] = std::move(ports);
  }
  json::object object{{"apiVersion", "tetherd.io/v1alpha1"},
                      {"kind", "EdgeNode"},
                      {"metadata",
                       {{"name", node_},
                        {"namespace", namespace_},
                        {"labels", {{"app.kubernetes.io/managed-by", "tetherd"}}}}},
                      {"spec", {{"firewall", std::move(firewall)}}}};
  auto collection = kube::collection_path(kube::kEdgeNodes, namespace_);
  auto created = co_await client_.create(std::move(collection), std::move(object));
  if (created || created.error().code == 409) {
    // Made, or made by someone else meanwhile: the watch brings it either way.
    missing_ = false;
    if (created) {
      ++stats_.edge_nodes_created;
      log_.notice("edgenode-created", "created EdgeNode " + namespace_ + "/" + node_,
                  {{"CONTROL_PLANE", server_}, {"NODE", node_}});
    }
    co_return;
  }
  ++stats_.status_failures;
  if (status_streak_++ == 0) {
    log_.warning("edgenode-create-failed",
                 "cannot create EdgeNode " + namespace_ + "/" + node_ + ": " +
                     kube::describe(created.error()) +
                     " (an admin can create it, see the README's enrolment section)",
                 {{"CONTROL_PLANE", server_}});
  }
}

awaitable<void> Tether::write_status() {
  if (missing_) {
    co_await create_edge_node();
    if (missing_ || stopped_) co_return;
  }
  const json::object patch = status_patch(status());
  const WallTime now = clock_.wall();
  if (!publisher_.due(patch, now)) co_return;
  auto path = kube::object_path(kube::kEdgeNodes, namespace_, node_, "status");
  json::object body = patch;
  auto written = co_await client_.merge_patch(std::move(path), std::move(body));
  if (written) {
    publisher_.written(patch, now);
    ++stats_.status_writes;
    if (status_streak_ > 0) {
      log_.notice(
          "status-written",
          "EdgeNode status written again after " + std::to_string(status_streak_) + " failures",
          {{"CONTROL_PLANE", server_}});
    }
    status_streak_ = 0;
    co_return;
  }
  ++stats_.status_failures;
  if (written.error().not_found()) {
    edge_node_missing("EdgeNode " + namespace_ + "/" + node_ + " not found writing its status");
    co_return;
  }
  if (status_streak_++ == 0) {
    log_.warning("status-write-failed",
                 "cannot write the EdgeNode status: " + kube::describe(written.error()),
                 {{"CONTROL_PLANE", server_}});
  }
}

}  // namespace tetherd
