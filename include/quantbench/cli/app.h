// The CLI entry: parses the subcommands, turns qb::Error into one line on stderr and an exit code.
#pragma once

namespace qb::cli {
int run_app(int argc, char** argv);
}
