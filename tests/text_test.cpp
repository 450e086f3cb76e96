// The shared text helpers: one-line messages (libtorch's backtraces stripped) and UTF-8 checks.
#include "qexp/text.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <stdexcept>

TEST(text, one_line_joins_lines_and_cuts_only_when_asked) {
  EXPECT_EQ(qexp::one_line("  a\n\tb  c \r\n"), "a b c");
  EXPECT_EQ(qexp::one_line(std::string(10, 'x'), 4), "xxxx...");
  EXPECT_EQ(qexp::one_line(std::string(10, 'x')), std::string(10, 'x'));
}

TEST(text, a_libtorch_error_loses_its_backtrace) {
  try {
    at::matmul(at::ones({2, 3}), at::ones({2, 3}));
    FAIL() << "no error";
  } catch (const std::exception& e) {
    ASSERT_NE(std::string(e.what()).find('\n'), std::string::npos) << "libtorch gave one line already";
    const std::string message = qexp::error_message(e);
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.find("cannot be multiplied"), std::string::npos) << message;
    EXPECT_EQ(message.find("frame #"), std::string::npos) << message;
    EXPECT_EQ(message.find("Exception raised from"), std::string::npos) << message;
  }
  EXPECT_EQ(qexp::error_message(std::runtime_error("a\nb")), "a b");
}

TEST(text, invalid_utf8_offset_points_at_the_first_bad_byte) {
  EXPECT_EQ(qexp::invalid_utf8_offset("plain ascii"), std::string_view::npos);
  EXPECT_EQ(qexp::invalid_utf8_offset("caf\xc3\xa9"), std::string_view::npos);
  EXPECT_EQ(qexp::invalid_utf8_offset("caf\xe9"), 3u);          // Latin-1
  EXPECT_EQ(qexp::invalid_utf8_offset("ab\xc0\xaf"), 2u);       // overlong '/'
  EXPECT_EQ(qexp::invalid_utf8_offset("\xed\xa0\x80"), 0u);     // a UTF-16 surrogate
  EXPECT_EQ(qexp::invalid_utf8_offset("ok\xf0\x9f\x98"), 2u);  // cut short
}
