#pragma once
#include "agent/core/clock.h"

namespace tetherd {

// The real clocks, read with clock_gettime.
class SystemClock final : public Clock {
 public:
  WallTime wall() const override;
  MonoTime monotonic() const override;
  MonoTime boottime() const override;
};

}  // namespace tetherd
