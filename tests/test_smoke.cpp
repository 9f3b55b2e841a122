#include <gtest/gtest.h>
#include "quantbench/core/error.h"
TEST(Smoke, ErrorKindName) { EXPECT_STREQ(qb::error_kind_name(qb::ErrorKind::kNotFound), "not_found"); }
