#include "agent/kube/watch_decoder.h"

#include <gtest/gtest.h>

namespace tetherd::kube {
namespace {

const std::string kAdded =
    R"({"type":"ADDED","object":{"kind":"EdgeNode","metadata":{"name":"a","resourceVersion":"10"}}})"
    "\n";
const std::string kModified =
    R"({"type":"MODIFIED","object":{"kind":"EdgeNode","metadata":{"name":"a","resourceVersion":"11"},"spec":{"x":"}{"}}})"
    "\n";
const std::string kBookmark =
    R"({"type":"BOOKMARK","object":{"kind":"EdgeNode","apiVersion":"tetherd.io/v1alpha1","metadata":{"resourceVersion":"12"}}})"
    "\n";
const std::string kDeleted =
    R"({"type":"DELETED","object":{"kind":"EdgeNode","metadata":{"name":"a","resourceVersion":"13"}}})"
    "\n";
const std::string kGone =
    R"J({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (13)","reason":"Expired","code":410}})J"
    "\n";

std::vector<WatchEvent> decode_in_pieces(const std::string& stream, std::size_t piece) {
  WatchDecoder decoder;
  std::vector<WatchEvent> events;
  for (std::size_t i = 0; i < stream.size(); i += piece) {
    auto r = decoder.feed(std::string_view(stream).substr(i, piece), events);
    EXPECT_TRUE(r) << r.error().message;
  }
  EXPECT_TRUE(decoder.finish());
  return events;
}

TEST(WatchDecoderTest, DecodesEveryTypeWhateverTheChunking) {
  const std::string stream = kAdded + kModified + kBookmark + kDeleted + kGone;
  // 1: every byte its own read; 7: events split at odd places; whole: all
  // events in one read.
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{64}, stream.size()}) {
    SCOPED_TRACE(piece);
    const auto events = decode_in_pieces(stream, piece);
    ASSERT_EQ(events.size(), 5u);
    EXPECT_EQ(events[0].type, WatchEventType::kAdded);
    EXPECT_EQ(events[0].resource_version(), "10");
    EXPECT_EQ(events[1].type, WatchEventType::kModified);
    EXPECT_EQ(events[1].object.at("spec").at("x").as_string(), "}{");
    EXPECT_EQ(events[2].type, WatchEventType::kBookmark);
    EXPECT_EQ(events[2].resource_version(), "12");
    EXPECT_EQ(events[3].type, WatchEventType::kDeleted);
    EXPECT_EQ(events[4].type, WatchEventType::kError);
    EXPECT_EQ(events[4].object.at("code").as_int64(), 410);
  }
}

TEST(WatchDecoderTest, EventsNeedNoNewlineBetweenThem) {
  std::string stream = kAdded + kModified;
  std::erase(stream, '\n');
  EXPECT_EQ(decode_in_pieces(stream, 5).size(), 2u);
}

TEST(WatchDecoderTest, AnEventSplitAcrossReadsIsHeldUntilComplete) {
  WatchDecoder decoder;
  std::vector<WatchEvent> events;
  ASSERT_TRUE(decoder.feed(kAdded.substr(0, 20), events));
  EXPECT_TRUE(events.empty());
  EXPECT_FALSE(decoder.finish()) << "a stream ending here ended inside an event";
  ASSERT_TRUE(decoder.feed(kAdded.substr(20), events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(decoder.finish());
}

struct BadStream {
  const char* name;
  std::string bytes;
  const char* message;
};

// Test names and failure messages show the case by name, not its bytes.
void PrintTo(const BadStream& c, std::ostream* os) {
  *os << c.name;
}

class WatchDecoderBadInputTest : public testing::TestWithParam<BadStream> {};

TEST_P(WatchDecoderBadInputTest, IsAClearErrorAndTheDecoderStaysFailed) {
  WatchDecoder decoder(1024);
  std::vector<WatchEvent> events;
  auto r = decoder.feed(GetParam().bytes, events);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(GetParam().message), std::string::npos) << r.error().message;
  EXPECT_FALSE(decoder.feed(kAdded, events)) << "no event is trusted after a bad one";
  EXPECT_FALSE(decoder.finish());
}

INSTANTIATE_TEST_SUITE_P(
    Streams, WatchDecoderBadInputTest,
    testing::Values(BadStream{"not_json", "{\"type\": ADDED}", "not JSON"},
                    BadStream{"array", "[1,2]", "not a JSON object"},
                    BadStream{"no_type", R"({"object":{}})", "no \"type\""},
                    BadStream{"no_object", R"({"type":"ADDED","object":"x"})", "no \"object\""},
                    BadStream{"unknown_type", R"({"type":"EXPLODED","object":{}})", "unknown type"},
                    BadStream{"no_rv", R"({"type":"ADDED","object":{"metadata":{}}})",
                              "without metadata.resourceVersion"},
                    BadStream{"too_large",
                              "{\"type\":\"ADDED\",\"object\":{\"x\":\"" + std::string(2000, 'a'),
                              "larger than 1024 bytes"},
                    BadStream{"too_deep", std::string(100, '['), "not JSON"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(WatchDecoderTest, EventsBeforeABadOneAreDelivered) {
  WatchDecoder decoder;
  std::vector<WatchEvent> events;
  EXPECT_FALSE(decoder.feed(kAdded + "{garbage", events));
  EXPECT_EQ(events.size(), 1u);
}

TEST(WatchDecoderTest, ManyEventsKeepMemoryPerEventNotPerStream) {
  // 10 000 events through a decoder bounded at 1 KiB per event.
  WatchDecoder decoder(1024);
  std::vector<WatchEvent> events;
  for (int i = 0; i < 10000; ++i) {
    events.clear();
    ASSERT_TRUE(decoder.feed(kModified, events));
    ASSERT_EQ(events.size(), 1u);
  }
  EXPECT_EQ(decoder.events_decoded(), 10000u);
}

}  // namespace
}  // namespace tetherd::kube
