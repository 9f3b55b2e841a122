// Escaping of cell text for the table printers (markdown, CSV): one definition for every table.
#pragma once

#include <string>

namespace qb::report {

// A '|' would split a markdown cell and a newline end its row: "\|" and a space instead.
std::string markdown_cell(const std::string& text);
// RFC 4180: quoted (with "" for ") when the text holds a comma, a quote or a newline.
std::string csv_cell(const std::string& text);

}  // namespace qb::report
