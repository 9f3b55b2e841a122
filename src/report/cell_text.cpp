#include "quantbench/report/cell_text.h"

#include <fmt/format.h>

namespace qb::report {

std::string markdown_cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
  return out;
}

std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string number_or_dash(double value, const char* format) {
  return value < 0 ? std::string("-") : fmt::format(fmt::runtime(format), value);
}

std::string number_or_blank(double value, const char* format) {
  return value < 0 ? std::string() : fmt::format(fmt::runtime(format), value);
}

}  // namespace qb::report
