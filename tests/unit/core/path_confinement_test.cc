#include "runtime/core/path_confinement.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace baton {
namespace {

namespace fs = std::filesystem;

// A fresh folder layout per test:
//   <tmp>/root/             the confinement root
//   <tmp>/root/data.txt
//   <tmp>/root/sub/
//   <tmp>/root/inner_link -> <tmp>/root/sub     (stays inside)
//   <tmp>/root/escape_link -> <tmp>/outside     (leaves the root)
//   <tmp>/outside/
//   <tmp>/root_sibling/      shares the root's name as a string prefix
class ConfinePathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/baton-confine-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    tmp_ = fs::canonical(pattern);
    root_ = tmp_ / "root";
    fs::create_directories(root_ / "sub");
    fs::create_directories(tmp_ / "outside");
    fs::create_directories(tmp_ / "root_sibling");
    std::ofstream(root_ / "data.txt") << "x";
    fs::create_directory_symlink(root_ / "sub", root_ / "inner_link");
    fs::create_directory_symlink(tmp_ / "outside", root_ / "escape_link");
  }
  void TearDown() override { fs::remove_all(tmp_); }

  // The error message, or "" when the path was accepted.
  std::string Error(const std::string& user_path, const std::string& field = "out") {
    auto r = ConfinePath(root_, user_path, field);
    if (r.ok()) return "";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
    return r.status().message();
  }

  fs::path tmp_, root_;
};

TEST_F(ConfinePathTest, RelativePathsResolveUnderTheRoot) {
  auto r = ConfinePath(root_, "run1/model", "out");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, root_ / "run1" / "model");
  r = ConfinePath(root_, "data.txt", "data");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, root_ / "data.txt");
}

TEST_F(ConfinePathTest, DotDotThatStaysInsideIsNormalised) {
  auto r = ConfinePath(root_, "sub/../run2/./x", "out");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, root_ / "run2" / "x");
}

TEST_F(ConfinePathTest, AbsolutePathInsideTheRootIsAccepted) {
  auto r = ConfinePath(root_, (root_ / "sub" / "new").string(), "out");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, root_ / "sub" / "new");
}

TEST_F(ConfinePathTest, DotDotEscapeIsRejectedNamingFieldAndPath) {
  const std::string message = Error("../escape");
  EXPECT_EQ(message.rfind("out: path '../escape'", 0), 0u) << message;
  EXPECT_NE(message.find("not inside"), std::string::npos) << message;
  EXPECT_NE(Error("sub/../../escape"), "");
  EXPECT_NE(Error("does/not/exist/../../../../x"), "");  // `..` through folders that do not exist yet
}

TEST_F(ConfinePathTest, AbsolutePathOutsideIsRejected) {
  EXPECT_NE(Error((tmp_ / "outside" / "x").string()), "");
  EXPECT_NE(Error("/etc/passwd", "data"), "");
  EXPECT_EQ(Error("/etc/passwd", "data").rfind("data: ", 0), 0u);
}

TEST_F(ConfinePathTest, SiblingWithTheRootAsStringPrefixIsOutside) {
  EXPECT_NE(Error((tmp_ / "root_sibling" / "x").string()), "");
  EXPECT_NE(Error("../root_sibling/x"), "");
}

TEST_F(ConfinePathTest, SymlinkThatEscapesIsRejected) {
  const std::string message = Error("escape_link/model");
  EXPECT_NE(message, "");
  // The message shows where the link really leads.
  EXPECT_NE(message.find((tmp_ / "outside").string()), std::string::npos) << message;
  EXPECT_NE(Error("escape_link"), "");
  EXPECT_NE(Error((root_ / "escape_link" / "x").string()), "");
}

TEST_F(ConfinePathTest, SymlinkThatStaysInsideIsFollowed) {
  auto r = ConfinePath(root_, "inner_link/model", "out");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, root_ / "sub" / "model");
}

TEST_F(ConfinePathTest, RootGivenThroughASymlinkStillConfines) {
  fs::create_directory_symlink(root_, tmp_ / "root_alias");
  auto r = ConfinePath(tmp_ / "root_alias", "run", "out");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, root_ / "run");
  EXPECT_FALSE(ConfinePath(tmp_ / "root_alias", "escape_link/x", "out").ok());
  EXPECT_TRUE(ConfinePath(tmp_ / "root_alias", (root_ / "sub").string(), "out").ok());
}

TEST_F(ConfinePathTest, TheRootItselfEmptyAndNulAreRejected) {
  EXPECT_NE(Error("."), "");
  EXPECT_NE(Error(root_.string()), "");
  EXPECT_NE(Error(root_.string() + "/"), "");
  EXPECT_NE(Error("sub/.."), "");
  EXPECT_NE(Error(""), "");
  EXPECT_NE(Error(std::string("run\0x", 5)), "");
}

}  // namespace
}  // namespace baton
