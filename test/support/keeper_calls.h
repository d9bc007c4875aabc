#pragma once
// The FirewallKeeper's calls, run to their end: for tests whose keeper
// works on the event loop (Worker::kLoop), which these poll until the
// answer comes.

#include <optional>

#include <boost/asio/io_context.hpp>

#include "agent/app/firewall_keeper.h"

namespace tetherd::test {

template <class T>
T settle(boost::asio::io_context& io, std::optional<T>& answer) {
  if (io.stopped()) io.restart();
  while (!answer && io.poll_one() > 0) {
  }
  if (!answer) return make_error("the keeper never answered");
  return std::move(*answer);
}

inline Result<void> update(boost::asio::io_context& io, FirewallKeeper& keeper,
                           firewall::DesiredSources desired) {
  std::optional<Result<void>> answer;
  keeper.update(std::move(desired), [&](Result<void> r) { answer = std::move(r); });
  return settle(io, answer);
}

inline Result<firewall::Firewall::Drift> reconcile(boost::asio::io_context& io,
                                                   FirewallKeeper& keeper) {
  std::optional<Result<firewall::Firewall::Drift>> answer;
  keeper.reconcile([&](Result<firewall::Firewall::Drift> r) { answer = std::move(r); });
  return settle(io, answer);
}

// Everything queued, done (a call without an answer to wait for).
inline void drain(boost::asio::io_context& io) {
  if (io.stopped()) io.restart();
  while (io.poll_one() > 0) {
  }
}

}  // namespace tetherd::test
