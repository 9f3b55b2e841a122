// Cell text for the table printers (markdown, CSV): one definition for every table.
#pragma once

#include <string>

namespace qb::report {

// A '|' would split a markdown cell and a newline end its row: "\|" and a space instead.
std::string markdown_cell(const std::string& text);
// RFC 4180: quoted (with "" for ") when the text holds a comma, a quote or a newline.
std::string csv_cell(const std::string& text);

// Table rows store an absent figure as a negative number: "-" (markdown) or "" (CSV) for it, else the
// value formatted with `format` (a fmt spec such as "{:.4f}").
std::string number_or_dash(double value, const char* format);
std::string number_or_blank(double value, const char* format);

}  // namespace qb::report
