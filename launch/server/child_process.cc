#include "launch/server/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

extern char** environ;

namespace baton::server {
namespace {

// A line longer than this is returned in pieces rather than buffered forever.
constexpr size_t kMaxLineBytes = 1 << 20;

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnSetup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

Status ConfigureSpawn(SpawnSetup& s, int stdout_write_fd, const std::string& stderr_path) {
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, sig);
  int rc = posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (rc == 0) rc = posix_spawnattr_setpgroup(&s.attr, 0);  // a new group, led by the child
  if (rc == 0) rc = posix_spawnattr_setsigmask(&s.attr, &empty);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(&s.attr, &defaults);
  if (rc == 0) rc = posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&s.actions, stdout_write_fd, 1);
  if (rc == 0) {
    rc = posix_spawn_file_actions_addopen(&s.actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  // The server's sockets, MPI's descriptors, other jobs' pipes: none of the child's business.
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&s.actions, 3);
  if (rc != 0) return Status::Internal(std::string("posix_spawn setup: ") + std::strerror(rc));
  return Status::Ok();
}

}  // namespace

bool IsLauncherVariable(const std::string& name_and_value) {
  return StartsWith(name_and_value, "OMPI_") || StartsWith(name_and_value, "PMIX_") ||
         StartsWith(name_and_value, "PMI_");
}

StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::vector<std::string>& argv,
                                                            const std::string& stderr_path) {
  if (argv.empty()) return Status::Internal("ChildProcess::Start: empty argv");
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!IsLauncherVariable(*e)) env.emplace_back(*e);
  }
  std::vector<char*> argv_ptrs, env_ptrs;
  for (const std::string& a : argv) argv_ptrs.push_back(const_cast<char*>(a.c_str()));
  argv_ptrs.push_back(nullptr);
  for (const std::string& e : env) env_ptrs.push_back(const_cast<char*>(e.c_str()));
  env_ptrs.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::Internal(std::string("pipe2: ") + std::strerror(errno));
  pid_t pid = 0;
  int rc = 0;
  {
    SpawnSetup setup;
    Status configured = ConfigureSpawn(setup, fds[1], stderr_path);
    rc = configured.ok()
             ? posix_spawnp(&pid, argv[0].c_str(), &setup.actions, &setup.attr, argv_ptrs.data(), env_ptrs.data())
             : -1;
    close(fds[1]);
    if (!configured.ok()) {
      close(fds[0]);
      return configured;
    }
  }
  if (rc != 0) {
    close(fds[0]);
    return Status::FailedPrecondition("cannot start '" + argv[0] + "': " + std::strerror(rc));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, fds[0]));
}

ChildProcess::~ChildProcess() {
  int status = 0;
  if (!TryReap(status)) {
    Signal(SIGKILL);
    std::lock_guard lock(mu_);
    waitpid(pid_, &status, 0);
    reaped_ = true;
  }
  close(stdout_fd_);
}

ChildProcess::ReadResult ChildProcess::ReadLine(int timeout_ms, std::string& line) {
  for (;;) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos || buffer_.size() >= kMaxLineBytes || (eof_ && !buffer_.empty())) {
      const size_t end = newline != std::string::npos ? newline : buffer_.size();
      line.assign(buffer_, 0, end);
      buffer_.erase(0, newline != std::string::npos ? end + 1 : end);
      return ReadResult::kLine;
    }
    if (eof_) return ReadResult::kEof;
    pollfd p{stdout_fd_, POLLIN, 0};
    const int ready = poll(&p, 1, timeout_ms);
    if (ready == 0 || (ready < 0 && errno == EINTR)) return ReadResult::kTimeout;
    char chunk[4096];
    const ssize_t n = ready > 0 ? read(stdout_fd_, chunk, sizeof chunk) : -1;
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      eof_ = true;  // closed, or a read error that will not go away
    }
  }
}

void ChildProcess::Signal(int signal) {
  std::lock_guard lock(mu_);
  if (!reaped_) kill(-pid_, signal);
}

bool ChildProcess::TryReap(int& exit_status) {
  std::lock_guard lock(mu_);
  if (reaped_) {
    exit_status = exit_status_;
    return true;
  }
  // Peek first (WNOWAIT): while the leader is an unreaped zombie its id, and
  // so the group id, cannot be reused, so the group can still be killed.
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno != ECHILD) return false;
    reaped_ = true;  // reaped elsewhere (SIGCHLD ignored): nothing left to wait for
    exit_status_ = -1;
    exit_status = exit_status_;
    return true;
  }
  if (info.si_pid == 0) return false;
  kill(-pid_, SIGKILL);  // whatever the leader left behind in its group
  int status = 0;
  waitpid(pid_, &status, 0);
  reaped_ = true;
  exit_status_ = status;
  exit_status = status;
  return true;
}

std::string ExitDescription(int exit_status) {
  if (exit_status < 0) return "ended (exit status unknown)";
  if (WIFEXITED(exit_status)) return "exited with code " + std::to_string(WEXITSTATUS(exit_status));
  if (WIFSIGNALED(exit_status)) {
    const int sig = WTERMSIG(exit_status);
    return "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "ended with wait status " + std::to_string(exit_status);
}

}  // namespace baton::server
