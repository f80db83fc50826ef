// `baton-client`: talks to a running baton-server. generate mirrors
// `baton generate` (same flags, same --json) plus --stream and --timeout;
// tokenize, detokenize, info and health call the other RPCs; finetune
// create|get|list|watch|cancel drive the FineTuning service.
#include <cstdio>

#include "launch/client/client_common.h"

int main(int argc, char** argv) {
  CLI::App app{"baton-client: generate text with a running baton-server"};
  app.require_subcommand(1);
  baton::client_cli::CommandRun run;
  baton::client_cli::RegisterGenerateCommand(app, run);
  baton::client_cli::RegisterTokenizeCommand(app, run);
  baton::client_cli::RegisterDetokenizeCommand(app, run);
  baton::client_cli::RegisterInfoCommand(app, run);
  baton::client_cli::RegisterHealthCommand(app, run);
  baton::client_cli::RegisterFinetuneCommands(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  const baton::Status status = run();
  if (!status.ok()) {
    std::fprintf(stderr, "baton-client: error: %s\n", status.ToString().c_str());
    return status.code() == baton::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
