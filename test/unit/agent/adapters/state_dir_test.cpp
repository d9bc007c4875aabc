#include "agent/adapters/state_dir.h"

#include <filesystem>
#include <fstream>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(StateDir, EnsureCreatesAPrivateDirectory) {
  test::TempDir tmp;
  StateDir dir(tmp.file("state"));
  ASSERT_FALSE(dir.ensure());
  struct stat st {};
  ASSERT_EQ(stat(dir.path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(dir.ensure()) << "ensure() is idempotent";
}

TEST(StateDir, EnsureRefusesAFileInTheWay) {
  test::TempDir tmp;
  std::ofstream(tmp.file("state")) << "x";
  EXPECT_EQ(StateDir(tmp.file("state")).ensure(), boost::system::errc::not_a_directory);
}

TEST(StateDir, ReplaceWritesAndReadsBack) {
  test::TempDir tmp;
  StateDir dir(tmp.path());
  ASSERT_FALSE(dir.replace("desired.json", "{\"a\":1}"));
  ASSERT_FALSE(dir.replace("desired.json", "{\"a\":2}"));
  boost::system::error_code ec;
  auto got = dir.read("desired.json", ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(*got, "{\"a\":2}");
  EXPECT_EQ(entries(tmp.path()), std::vector<std::string>{"desired.json"}) << "no temp files left";
}

TEST(StateDir, ReplaceSetsTheRequestedMode) {
  test::TempDir tmp;
  StateDir dir(tmp.path());
  ASSERT_FALSE(dir.replace("secret", "k"));
  ASSERT_FALSE(dir.replace("public", "p", 0644));
  struct stat st {};
  ASSERT_EQ(stat(tmp.file("secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(tmp.file("public").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(StateDir, FailedReplaceKeepsTheOldFileAndLeavesNoTemp) {
  test::TempDir tmp;
  StateDir dir(tmp.path());
  // A directory under the target name makes the final rename fail (EISDIR),
  // after the temp file was written and synced.
  fs::create_directory(tmp.file("blocked"));
  std::ofstream(tmp.file("blocked/inside")) << "old";
  EXPECT_EQ(dir.replace("blocked", "new"), boost::system::errc::is_a_directory);
  EXPECT_EQ(entries(tmp.path()), std::vector<std::string>{"blocked"});
  std::ifstream in(tmp.file("blocked/inside"));
  std::string old;
  in >> old;
  EXPECT_EQ(old, "old");
}

TEST(StateDir, ReplaceInAMissingDirectoryFails) {
  StateDir dir("/nonexistent/tetherd-state");
  EXPECT_EQ(dir.replace("x", "y"), boost::system::errc::no_such_file_or_directory);
}

TEST(StateDir, NamesMustBePlainFileNames) {
  test::TempDir tmp;
  StateDir dir(tmp.path());
  for (const char* bad : {"", ".", "..", "../escape", "a/b"}) {
    EXPECT_EQ(dir.replace(bad, "x"), boost::system::errc::invalid_argument) << bad;
    boost::system::error_code ec;
    EXPECT_FALSE(dir.read(bad, ec).has_value());
    EXPECT_EQ(ec, boost::system::errc::invalid_argument) << bad;
  }
  EXPECT_EQ(entries(tmp.path()), std::vector<std::string>{});
}

TEST(StateDir, ReadReportsAbsenceAndRefusesOversizedFiles) {
  test::TempDir tmp;
  StateDir dir(tmp.path());
  boost::system::error_code ec;
  EXPECT_FALSE(dir.read("missing", ec).has_value());
  EXPECT_EQ(ec, boost::system::errc::no_such_file_or_directory);

  ASSERT_FALSE(dir.replace("big", std::string(100, 'x')));
  EXPECT_FALSE(dir.read("big", ec, 99).has_value());
  EXPECT_EQ(ec, boost::system::errc::file_too_large);
  auto ok = dir.read("big", ec, 100);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->size(), 100u);
}

}  // namespace
}  // namespace tetherd
