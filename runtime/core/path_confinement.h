// ConfinePath: turns a path a remote user gave (a gRPC request field) into
// an absolute path that is guaranteed to lie inside a configured root, so a
// server never reads or writes outside the folder it was given.
//
// Relative paths resolve under `root`; absolute ones must already be under
// it. Both sides are resolved with std::filesystem::weakly_canonical, so `..`
// and symlinks (in the existing part of the path) are followed before the
// check: `../x`, `/etc`, and `link/x` where `link` points outside are all
// rejected. The root itself is rejected too (a job writing into the root
// would clobber every other job's files). Stateless; thread-safe.
//
// What it cannot prevent: a symlink created inside the root *after* the
// check (time of check to time of use). Roots must not be writable by the
// users whose paths are confined.
#pragma once

#include <filesystem>
#include <string>

#include "runtime/core/status.h"

namespace baton {

// InvalidArgument "<field>: path '<user_path>' ..." when the path is empty,
// holds a NUL byte, or resolves outside `root` (or to `root` itself).
StatusOr<std::filesystem::path> ConfinePath(const std::filesystem::path& root, const std::string& user_path,
                                            const std::string& field);

}  // namespace baton
