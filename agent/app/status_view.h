#pragma once
// `tetherctl status`: the status document (status_document.h) drawn as a
// compact table in the manner of kubectl, and the command's exit code.
// Pure: the time is passed in, nothing is read or written.

#include <string>

#include "agent/app/status_document.h"
#include "agent/core/clock.h"

namespace tetherd {

// The table, each line ending in '\n'. With `colour`, ANSI colours on the
// condition statuses (True green, False red, Unknown yellow) and on a
// certificate's expiry (red when expired, yellow when under 30 days, the
// default linkerd.rotateBefore), and nowhere else. Text from the document
// never carries control characters to the terminal.
std::string render_status(const StatusDocument& status, WallTime now, bool colour);

// 0 when the Ready condition is True; 1 when it is False, Unknown or absent.
int status_exit_code(const StatusDocument& status);

// kubectl's AGE (apimachinery's HumanDuration): "45s", "3m20s", "12m",
// "5h3m", "20h", "3d4h", "100d", "2y30d"; "<invalid>" for more than a
// second in the future (clocks a little apart say "0s").
std::string human_duration(Duration d);

}  // namespace tetherd
