#include "agent/core/timer.h"

#include <boost/asio/steady_timer.hpp>

namespace tetherd {
namespace {

class SteadyTimer final : public TimerBackend {
 public:
  explicit SteadyTimer(const boost::asio::any_io_executor& executor) : timer_(executor) {}
  void expires_after(Duration d) override { timer_.expires_after(d); }
  void expires_never() override { timer_.expires_at(boost::asio::steady_timer::time_point::max()); }
  std::size_t cancel() override { return timer_.cancel(); }
  void wait(Handler handler) override { timer_.async_wait(std::move(handler)); }

 private:
  boost::asio::steady_timer timer_;
};

}  // namespace

std::unique_ptr<TimerBackend> make_steady_timer(const boost::asio::any_io_executor& executor) {
  return std::make_unique<SteadyTimer>(executor);
}

std::unique_ptr<TimerBackend> Clock::make_timer(
    const boost::asio::any_io_executor& executor) const {
  return make_steady_timer(executor);
}

}  // namespace tetherd
