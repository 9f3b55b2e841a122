// The quality table: rows from quality records only, figures as measured, errors kept with their message.
#include <gtest/gtest.h>

#include "quantbench/report/quality_table.h"
#include "quantbench/report/result.h"

namespace qb::report {
namespace {

using nlohmann::json;

json quality_record(const std::string& precision, double ppl, bool with_baseline) {
  json q = {{"perplexity", ppl}, {"ctx", 256}, {"stride", 128}, {"scored_tokens", 1000}, {"weights", "checkpoint"}};
  if (with_baseline) q.update({{"baseline", "fp32"}, {"kl_mean", 0.0123}, {"kl_p99", 0.0456}, {"top1_agreement", 0.9}});
  return {{"schema", kQualitySchema},
          {"status", "ok"},
          {"key", {{"model", "m|x"}, {"precision", precision}, {"device", "cuda"}, {"text", "t.txt"}}},
          {"format_options", {{"activation_dtype", "fp16"}, {"blocksize", 64}, {"double_quant", false}}},
          {"quality", q}};
}

TEST(QualityTable, RowsCellsAndErrors) {
  json failed = {{"schema", kQualitySchema},
                 {"status", "error"},
                 {"key", {{"model", "m|x"}, {"precision", "awq"}, {"device", "cuda"}, {"text", "t.txt"}}},
                 {"error", {{"kind", "invalid_input"}, {"message", "in_features 344 is not a multiple of 128"}}}};
  const json timed = {{"schema", kResultSchema}, {"status", "ok"}};
  const auto rows = quality_rows({quality_record("fp32", 253.07412, false), timed, quality_record("nf4", 268.5, true),
                                  failed});
  ASSERT_EQ(rows.size(), 3u);  // the timed record is not a quality row
  EXPECT_EQ(rows[0].baseline, "");
  EXPECT_DOUBLE_EQ(rows[1].kl_p99, 0.0456);
  EXPECT_EQ(rows[1].format_options, "blocksize=64 double_quant=false");
  EXPECT_EQ(rows[2].status, "error");

  const std::string md = render_quality_markdown(rows);
  EXPECT_NE(md.find("| m\\|x | fp32 | cuda | blocksize=64 double_quant=false | 256 / 128 | 1000 | 253.0741 | - | - | - | - | ok |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| 268.5000 | fp32 | 0.01230 | 0.04560 | 0.9000 | ok |"), std::string::npos) << md;
  EXPECT_NE(md.find("invalid_input: in_features 344 is not a multiple of 128 |"), std::string::npos) << md;

  const std::string csv = render_quality_csv(rows);
  EXPECT_EQ(csv.rfind("model,precision,device,text,weights,format_options,ctx,", 0), 0u);
  EXPECT_NE(csv.find("m|x,nf4,cuda,t.txt,checkpoint,blocksize=64 double_quant=false,256,128,1000,268.5,fp32,0.0123,"),
            std::string::npos) << csv;
}

}  // namespace
}  // namespace qb::report
