// The HTML printer: one self-contained page (inline style, no script, nothing fetched) with the
// same cells as the markdown table, so it opens from a results folder or a CI artifact as is.
#include <string>

#include "quantbench/report/table.h"

namespace qb::report {
namespace {

std::string escape_html(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

constexpr const char* kStyle =
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;font-size:13px}"
    "th,td{border:1px solid #ccc;padding:3px 7px;white-space:nowrap}"
    "th{background:#f0f0f0;position:sticky;top:0}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.peer td{background:#f4f8ff}"
    "tr.error td{color:#a00}"
    "td.message{white-space:normal;max-width:40em}";

}  // namespace

std::string render_html(const std::vector<TableRow>& rows, const std::string& title) {
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                    escape_html(title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n<h1>" +
                    escape_html(title) + "</h1>\n<table>\n<thead><tr>";
  const auto& columns = display_columns();
  for (const auto& column : columns) out += "<th>" + escape_html(column.header) + "</th>";
  out += "</tr></thead>\n<tbody>\n";
  for (const auto& row : rows) {
    // Classes mark a peer's rows and failed rows; the cells are the markdown table's.
    std::string classes = row.runner != kOwnRunner ? "peer" : "";
    if (row.status != "ok") classes += classes.empty() ? "error" : " error";
    out += classes.empty() ? "<tr>" : "<tr class=\"" + classes + "\">";
    const auto cells = display_cells(row);
    for (size_t i = 0; i < cells.size(); ++i) {
      const bool message = i + 1 == cells.size() && row.status != "ok";
      const char* cls = message ? " class=\"message\"" : columns[i].numeric ? " class=\"num\"" : "";
      out += std::string("<td") + cls + ">" + escape_html(cells[i]) + "</td>";
    }
    out += "</tr>\n";
  }
  out += "</tbody>\n</table>\n<p>runner: who generated (quantbench, or a peer such as transformers' generate); "
         "speedup is over the fp16 row of the same model and runner; ppl where a quality record measured it.</p>\n"
         "</body>\n</html>\n";
  return out;
}

}  // namespace qb::report
