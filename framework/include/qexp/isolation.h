// Running a piece of work in a child process of its own, so that whatever a plugin does there (a
// segfault, an abort, a throw of something that is not a std::exception, exit(), an endless loop)
// ends the child and not the caller. What the child wants the caller to keep it sends as messages
// through a pipe while it works, so a crash loses only what came after the last message.
//
// Why a fresh program (fork + exec) and not a plain fork of the caller: libgomp's thread pool,
// which libtorch and oneDNN run on, does not survive fork. A forked copy of a process that has
// run a parallel region waits forever for pool threads that only exist in the parent
// (seen with the libgomp of Debian 12). qexp re-runs itself with the same command line instead
// (`this_program_command_line`), and the child reloads what it needs.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace qexp {

// Sends one message (any bytes) to the parent.
using message_sink = std::function<void(const std::string&)>;

struct isolated_run {
  std::vector<std::string> messages;  // what the child sent, in order, up to its end
  bool finished = false;       // it exited with status 0
  int exit_status = -1;        // when it exited; -1 otherwise
  int signal = 0;              // when a signal ended it (timed out: the parent's SIGKILL)
  bool timed_out = false;
  bool timed_out_starting = false;  // timed out before its first message (startup_seconds)
  double timeout_seconds = 0;  // the limit it was given (0: none)
  double startup_seconds = 0;
  double seconds = 0;          // from start to end

  // How the child ended, for one error line: "was killed by signal 11 (Segmentation fault)",
  // "exited with status 3", "was killed after 5 s (measure.timeout_s)", "finished".
  std::string ending(const std::string& timeout_name = "the time limit") const;
};

// Starts the program argv[0] (a path) with these arguments and the caller's environment plus
// `environment`, and waits for it. The child is killed when the caller dies, and when it runs
// longer than `timeout_seconds` (> 0). With `startup_seconds` > 0 that clock starts at the child's
// first message instead, and until then the limit is `startup_seconds`: a program that reloads a
// model first is not charged for it, on a busy machine least of all. Its stdin, stdout and stderr
// are the caller's (flushed first, so the caller's earlier output comes first). Throws qexp::error
// when the pipe or the process cannot be made; a program that cannot be executed exits with
// status 127.
isolated_run run_isolated(const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment,
                          double timeout_seconds = 0, double startup_seconds = 0);

// In a program started by run_isolated: the channel to the parent (thread-safe; a parent gone away
// ends this process). Empty in any other process.
const message_sink& parent_channel();

// The command line this process was started with (/proc/self/cmdline) with argv[0] replaced by
// this program's own file (/proc/self/exe), so run_isolated can start another copy of it.
std::vector<std::string> this_program_command_line();

}  // namespace qexp
