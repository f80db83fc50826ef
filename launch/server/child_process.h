// ChildProcess: one program started with posix_spawn in a process group of
// its own, so that a whole tree (a launcher such as mpirun and its ranks)
// can be signalled at once. Its stdout comes back through a pipe, read line
// by line; stdin is /dev/null and stderr goes to a file.
//
// The child starts clean of what the server's own launch put around it:
// OMPI_*, PMIX_* and PMI_* are removed from its environment (otherwise a
// `baton` child would believe it is a rank of the server's mpirun job, and a
// nested mpirun would refuse to start), its signal mask is empty and
// SIGTERM/SIGINT/SIGPIPE are back to their defaults (baton-server blocks the
// shutdown signals in every thread), and no descriptor above 2 is inherited.
//
// ReadLine has one caller (the job's reader thread); Signal and TryReap may
// be called from any thread: they share a lock, so a signal never reaches a
// process group id that was reaped (and could have been reused).
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/core/status.h"

namespace baton::server {

// True for the variables a launcher sets for its ranks (OMPI_*, PMIX_*, PMI_*).
bool IsLauncherVariable(const std::string& name_and_value);

class ChildProcess {
 public:
  // argv[0] is looked up in PATH when it has no slash. `stderr_path` is
  // created or truncated.
  static StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                       const std::string& stderr_path);
  ~ChildProcess();  // SIGKILLs the group and reaps it if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Waits up to `timeout_ms` for a whole line of stdout (without its '\n').
  // Returns "line": a line is in `line`; "timeout": none yet; "eof": stdout
  // is closed (a last unterminated line is returned first as a line).
  enum class ReadResult { kLine, kTimeout, kEof };
  ReadResult ReadLine(int timeout_ms, std::string& line);

  // Sends `signal` to the whole process group; nothing once it is reaped.
  void Signal(int signal);

  // Non-blocking: true once the group leader has exited, and then it has
  // killed what is left of its group and reaped it; `exit_status` is what
  // waitpid reported (see ExitDescription).
  bool TryReap(int& exit_status);

 private:
  ChildProcess(pid_t pid, int stdout_fd) : pid_(pid), stdout_fd_(stdout_fd) {}

  const pid_t pid_;
  const int stdout_fd_;
  std::mutex mu_;
  bool reaped_ = false;  // under mu_
  int exit_status_ = 0;  // under mu_, once reaped_
  bool eof_ = false;
  std::string buffer_;  // stdout read but not yet returned
};

// "exited with code 2", "killed by signal 9 (Killed)".
std::string ExitDescription(int exit_status);

}  // namespace baton::server
