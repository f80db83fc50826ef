// `baton`: generate text, print logits, make a random-weight model, fine-tune.
// Exit codes: 0 ok, 2 bad input (a message names the fault), 1 otherwise.
#include <cstdio>

#include "launch/cli/cli_common.h"

int main(int argc, char** argv) {
  CLI::App app{"Baton: pipeline-parallel transformer runtime"};
  app.require_subcommand(1);
  baton::cli::CommandRun run;
  baton::cli::RegisterGenerateCommand(app, run);
  baton::cli::RegisterLogitsCommand(app, run);
  baton::cli::RegisterMakeModelCommand(app, run);
  baton::cli::RegisterFinetuneCommand(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  const baton::Status status = run();
  if (!status.ok()) {
    std::fprintf(stderr, "baton: error: %s\n", status.ToString().c_str());
    return status.ExitCode();
  }
  return 0;
}
