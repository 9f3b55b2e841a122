#include "quantbench/cli/app.h"

int main(int argc, char** argv) { return qb::cli::run_app(argc, argv); }
