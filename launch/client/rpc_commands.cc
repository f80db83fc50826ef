// `baton-client tokenize | detokenize | info | health`: one unary call each.
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <memory>

#include "launch/client/client_common.h"

namespace baton::client_cli {

void RegisterTokenizeCommand(CLI::App& app, CommandRun& run) {
  struct Flags {
    ServerFlags server;
    std::string text;
    bool add_special_tokens = false, json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Text to token ids with the server's tokenizer");
  AddServerFlags(*cmd, f->server);
  cmd->add_option("--text", f->text, "Text to tokenize")->required();
  cmd->add_flag("--add-special-tokens", f->add_special_tokens, "Add the tokenizer's special tokens (e.g. BOS)");
  cmd->add_flag("--json", f->json, "Print {\"token_ids\": [...]}");
  cmd->callback([f, &run] {
    run = [f]() -> Status {
      BatonClient client(f->server.server);
      BATON_ASSIGN_OR_RETURN(auto ids, client.Tokenize(f->text, f->add_special_tokens, f->server.call()));
      if (f->json) {
        std::printf("%s\n", Dump({{"token_ids", ids}}).c_str());
      } else {
        std::string line;
        for (size_t i = 0; i < ids.size(); ++i) {
          if (i) line += ',';
          line += std::to_string(ids[i]);
        }
        std::printf("%s\n", line.c_str());
      }
      return Status::Ok();
    };
  });
}

void RegisterDetokenizeCommand(CLI::App& app, CommandRun& run) {
  struct Flags {
    ServerFlags server;
    std::string ids;
    bool skip_special_tokens = false, json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("detokenize", "Token ids to text with the server's tokenizer");
  AddServerFlags(*cmd, f->server);
  cmd->add_option("--ids", f->ids, "Token ids, comma separated")->required();
  cmd->add_flag("--skip-special-tokens", f->skip_special_tokens, "Leave special tokens out of the text");
  cmd->add_flag("--json", f->json, "Print {\"text\": ...}");
  cmd->callback([f, &run] {
    run = [f]() -> Status {
      BATON_ASSIGN_OR_RETURN(auto ids, ParseIds(f->ids, "--ids"));
      BatonClient client(f->server.server);
      BATON_ASSIGN_OR_RETURN(std::string text, client.Detokenize(ids, f->skip_special_tokens, f->server.call()));
      if (f->json) {
        std::printf("%s\n", Dump({{"text", text}}).c_str());
      } else {
        std::printf("%s\n", text.c_str());
      }
      return Status::Ok();
    };
  });
}

void RegisterInfoCommand(CLI::App& app, CommandRun& run) {
  auto f = std::make_shared<ServerFlags>();
  CLI::App* cmd = app.add_subcommand("info", "Print the served model's facts (GetModelInfo) as JSON");
  AddServerFlags(*cmd, *f);
  cmd->callback([f, &run] {
    run = [f]() -> Status {
      BatonClient client(f->server);
      BATON_ASSIGN_OR_RETURN(v1::ModelInfo info, client.GetModelInfo(f->call()));
      google::protobuf::util::JsonPrintOptions options;
      options.preserve_proto_field_names = true;  // snake_case, like every other --json of Baton
      options.always_print_primitive_fields = true;
      std::string json;
      const auto converted = google::protobuf::util::MessageToJsonString(info, &json, options);
      if (!converted.ok()) return Status::Internal("info: cannot print ModelInfo as JSON: " + converted.ToString());
      std::printf("%s\n", json.c_str());
      return Status::Ok();
    };
  });
}

void RegisterHealthCommand(CLI::App& app, CommandRun& run) {
  struct Flags {
    ServerFlags server;
    std::string service;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("health", "Print the grpc.health.v1 status; exit 0 only when SERVING");
  AddServerFlags(*cmd, f->server);
  cmd->add_option("--service", f->service, "Service to ask about (default: the whole server)");
  cmd->callback([f, &run] {
    run = [f]() -> Status {
      BatonClient client(f->server.server);
      BATON_ASSIGN_OR_RETURN(ServingStatus status, client.Health(f->service, f->server.call()));
      std::printf("%s\n", ServingStatusName(status));
      if (status != ServingStatus::kServing) {
        return Status::Unavailable("health: server " + f->server.server + " is " + ServingStatusName(status));
      }
      return Status::Ok();
    };
  });
}

}  // namespace baton::client_cli
