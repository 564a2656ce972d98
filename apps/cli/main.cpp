// tq: quantize, inspect, benchmark and compare TorchScript models from the command line. Each
// subcommand lives in its own file (*_command.cpp); this one parses and maps errors to exit codes:
// 0 success, 1 usage error, 2 bad input file, 3 runtime failure.
#include <CLI/CLI.hpp>

#include <iostream>
#include <stdexcept>
#include <vector>

#include "cli_support.h"
#include "tq/core/error_message.h"

int main(int argc, char** argv) {
  using namespace tq::cli;
  CLI::App app{"tq: quantize, inspect, benchmark and compare TorchScript models (PyTorch's quantization in C++)"};
  app.require_subcommand(1);
  app.footer("Exit codes: 0 success, 1 usage error, 2 bad input file, 3 runtime failure.");
  const std::vector<Command> commands = {add_quantize_command(app), add_inspect_command(app), add_bench_command(app),
                                         add_compare_command(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  try {
    for (const auto& command : commands) {
      if (*command.app) return command.run();
    }
  } catch (const UsageError& e) {
    std::cerr << "tq: " << e.what() << "\n";
    return 1;
  } catch (const std::invalid_argument& e) {
    std::cerr << "tq: " << e.what() << "\n";
    return 1;
  } catch (const BadInput& e) {
    std::cerr << "tq: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tq: " << tq::error_message(e) << "\n";
    return 3;
  }
  return 1;
}
