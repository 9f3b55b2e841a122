// The report's printers over a hand-made results file (tests/fixtures/report/results.jsonl; its
// README lists each record's figures): every expected cell below is worked out by hand from them.
// Peers' rows (runner "transformers ...") stay rows of their own, their speedup is over their own
// fp16, and perplexity from quality records lands on quantbench's rows only.
#include <gtest/gtest.h>

#include "quantbench/report/result.h"
#include "quantbench/report/table.h"
#include "test_support.h"

namespace qb::report {
namespace {

const char* kHf = "transformers 5.17.0 eager generate";

std::vector<TableRow> fixture_rows() {
  return table_rows(read_results(test::fixtures_dir() + "/report/results.jsonl"));
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "missing: " << part << "\nin:\n" << text;
}

TEST(ReportFixture, RowsAreGroupedByModelWithPeersAsTheirOwnRows) {
  const auto rows = fixture_rows();
  ASSERT_EQ(rows.size(), 8u);  // 10 records, 2 of them quality records
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"quantbench", "fp16"}, {"quantbench", "nf4"}, {"quantbench", "int8"}, {kHf, "fp16"},
      {kHf, "nf4"},           {"quantbench", "fp16"}, {"quantbench", "nf4"}, {kHf, "fp16"}};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].runner, expected[i].first) << i;
    EXPECT_EQ(rows[i].precision, expected[i].second) << i;
    EXPECT_EQ(rows[i].model, i < 5 ? "synthetic:gpt2" : "tiny-real") << i;
  }
  EXPECT_DOUBLE_EQ(rows[1].speedup_vs_fp16, 1.25);  // 1250 / 1000
  EXPECT_DOUBLE_EQ(rows[3].speedup_vs_fp16, 1.0);   // transformers' fp16 over itself, not over quantbench's
  EXPECT_DOUBLE_EQ(rows[6].speedup_vs_fp16, 1.1);   // 2750 / 2500
  EXPECT_DOUBLE_EQ(rows[5].perplexity, 120.5);
  EXPECT_DOUBLE_EQ(rows[6].perplexity, 131.25);
  EXPECT_DOUBLE_EQ(rows[7].perplexity, -1);  // the peer's tiny-real fp16: not measured
  EXPECT_DOUBLE_EQ(rows[5].weight_mb, 14.58);
}

TEST(ReportFixture, MarkdownCells) {
  const std::string md = render_markdown(fixture_rows());
  expect_contains(md, "| model | runner | precision | device | weights | batch | prompt | gen | size MB | e2e ms | "
                      "decode tok/s | speedup vs fp16 | prefill ms | p99 step ms | peak alloc MB | device peak MB | "
                      "floor % | ppl | status |\n");
  expect_contains(md, "| synthetic:gpt2 | quantbench | fp16 | cuda | synthetic | 1 | 128 | 128 | 250.0 | 132.0 | "
                      "1000.0 | 1.00x | 5.00 | 1.200 | 300.0 | 400.0 | 50% | - | ok |\n");
  expect_contains(md, "| synthetic:gpt2 | quantbench | nf4 | cuda | synthetic | 1 | 128 | 128 | 80.0 | 107.5 | "
                      "1250.0 | 1.25x | 6.25 | 0.950 | 120.0 | 200.0 | 80% | - | ok |\n");
  // A '|' inside a message is escaped so the row keeps its columns.
  expect_contains(md, "| synthetic:gpt2 | quantbench | int8 | cuda | synthetic | 1 | 128 | 128 | - | - | - | - | - | "
                      "- | - | - | - | - | out_of_memory: CUDA out of memory \\| tried 2 GiB with <1 GiB free |\n");
  expect_contains(md, std::string("| synthetic:gpt2 | ") + kHf + " | fp16 | cuda | synthetic | 1 | 128 | 128 | 250.0 | "
                      "329.5 | 400.0 | 1.00x | 12.00 | 2.600 | 310.0 | - | - | - | ok |\n");
  expect_contains(md, "| tiny-real | quantbench | nf4 | cuda | checkpoint | 1 | 64 | 32 | 5.0 | 13.3 | 2750.0 | 1.10x | "
                      "2.00 | 0.450 | 9.0 | 0.0 | 5% | 131.25 | ok |\n");
  expect_contains(md, std::string("| tiny-real | ") + kHf + " | fp16 | cuda | checkpoint | 1 | 64 | 32 | 14.6 | 41.7 | "
                      "800.0 | 1.00x | 3.00 | 1.500 | 22.0 | - | - | - | ok |\n");
  // The header's alignment row: text left, figures right.
  expect_contains(md, "|---|---|---|---|---|---:|---:|---:|");
}

TEST(ReportFixture, CsvCells) {
  const std::string csv = render_csv(fixture_rows());
  expect_contains(csv, "model,precision,device,weights,batch,prompt_len,gen_len,weight_mb,e2e_ms,decode_tokens_per_s,"
                       "speedup_vs_fp16,prefill_ms,p99_step_ms,peak_allocated_mb,device_peak_mb,fraction_of_floor,"
                       "perplexity,status,error,runner\n");
  expect_contains(csv, "synthetic:gpt2,nf4,cuda,synthetic,1,128,128,80,107.5,1250,1.25,6.25,0.95,120,200,0.8,,ok,,"
                       "quantbench\n");
  expect_contains(csv, "synthetic:gpt2,int8,cuda,synthetic,1,128,128,0,0,0,,0,0,,,,,error,out_of_memory: CUDA out "
                       "of memory | tried 2 GiB with <1 GiB free,quantbench\n");
  expect_contains(csv, std::string("synthetic:gpt2,fp16,cuda,synthetic,1,128,128,250,329.5,400,1,12,2.6,310,,,,ok,,") +
                           kHf + "\n");
  expect_contains(csv, "tiny-real,fp16,cuda,checkpoint,1,64,32,14.58,13.9,2500,1,1.5,0.5,20,0,0.1,120.5,ok,,quantbench\n");
}

TEST(ReportFixture, HtmlIsOneSelfContainedPageWithTheMarkdownCells) {
  const std::string html = render_html(fixture_rows(), "seed <tables>");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  expect_contains(html, "<title>seed &lt;tables&gt;</title>");
  expect_contains(html, "</table>");
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);  // nothing fetched
  expect_contains(html, "<th>speedup vs fp16</th>");
  expect_contains(html, "<tr><td>synthetic:gpt2</td><td>quantbench</td><td>nf4</td><td>cuda</td><td>synthetic</td>"
                        "<td class=\"num\">1</td><td class=\"num\">128</td><td class=\"num\">128</td>"
                        "<td class=\"num\">80.0</td><td class=\"num\">107.5</td><td class=\"num\">1250.0</td>"
                        "<td class=\"num\">1.25x</td><td class=\"num\">6.25</td><td class=\"num\">0.950</td>"
                        "<td class=\"num\">120.0</td><td class=\"num\">200.0</td><td class=\"num\">80%</td>"
                        "<td class=\"num\">-</td><td>ok</td></tr>\n");
  expect_contains(html, "<tr class=\"error\"><td>synthetic:gpt2</td><td>quantbench</td><td>int8</td>");
  expect_contains(html, "<td class=\"message\">out_of_memory: CUDA out of memory | tried 2 GiB with &lt;1 GiB free</td>");
  expect_contains(html, std::string("<tr class=\"peer\"><td>synthetic:gpt2</td><td>") + kHf + "</td><td>fp16</td>");
  expect_contains(html, std::string("<tr class=\"peer error\"><td>synthetic:gpt2</td><td>") + kHf + "</td><td>nf4</td>");
  expect_contains(html, "<td class=\"num\">131.25</td>");
  // Every row has as many cells as there are columns.
  size_t rows = 0;
  for (size_t pos = html.find("<tr"); pos != std::string::npos; pos = html.find("<tr", pos + 1)) ++rows;
  EXPECT_EQ(rows, 1u + 8u);
  size_t cells = 0;
  for (size_t pos = html.find("<td"); pos != std::string::npos; pos = html.find("<td", pos + 1)) ++cells;
  EXPECT_EQ(cells, 8u * display_columns().size());
}

}  // namespace
}  // namespace qb::report
