#include "runtime/core/path_confinement.h"

#include <algorithm>
#include <system_error>

namespace baton {
namespace {

Status Rejected(const std::string& field, const std::string& user_path, const std::string& why) {
  return Status::InvalidArgument(field + ": path '" + user_path + "' " + why);
}

// True when `inner` is `outer` followed by at least one more component.
// Both are canonical, so comparing components is enough (no `..` left).
bool StrictlyInside(const std::filesystem::path& outer, const std::filesystem::path& inner) {
  auto o = outer.begin(), i = inner.begin();
  for (; o != outer.end(); ++o, ++i) {
    // A trailing separator shows up as an empty last component; it adds nothing.
    if (o->empty() && std::next(o) == outer.end()) break;
    if (i == inner.end() || *o != *i) return false;
  }
  return std::any_of(i, inner.end(), [](const std::filesystem::path& part) { return !part.empty(); });
}

}  // namespace

StatusOr<std::filesystem::path> ConfinePath(const std::filesystem::path& root, const std::string& user_path,
                                            const std::string& field) {
  if (user_path.empty()) return Status::InvalidArgument(field + ": a path is required");
  if (user_path.find('\0') != std::string::npos) return Rejected(field, user_path, "contains a NUL byte");
  std::error_code error;
  const std::filesystem::path canonical_root = std::filesystem::weakly_canonical(root, error);
  if (error) return Status::Internal("confinement root '" + root.string() + "': " + error.message());
  const std::filesystem::path given(user_path);
  const std::filesystem::path joined = given.is_absolute() ? given : canonical_root / given;
  const std::filesystem::path resolved = std::filesystem::weakly_canonical(joined, error);
  if (error) return Rejected(field, user_path, "cannot be resolved: " + error.message());
  if (!StrictlyInside(canonical_root, resolved)) {
    return Rejected(field, user_path,
                    "resolves to '" + resolved.string() + "', which is not inside '" + canonical_root.string() + "'");
  }
  return resolved;
}

}  // namespace baton
