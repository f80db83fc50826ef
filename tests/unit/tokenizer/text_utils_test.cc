// UTF-8 helpers, the byte-level map and NFC.
#include <gtest/gtest.h>

#include <string>

#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/unicode_nfc.h"
#include "runtime/tokenizer/utf8.h"

namespace baton {
namespace {

const std::string kFffd(kReplacementCharacter);

TEST(Utf8, LossyReplacesEachMaximalInvalidSubpart) {
  EXPECT_EQ(Utf8Lossy("abc"), "abc");
  EXPECT_EQ(Utf8Lossy("\xe4\xb8\xad"), "中");
  EXPECT_EQ(Utf8Lossy("\xe4\xb8"), kFffd);  // truncated: one
  EXPECT_EQ(Utf8Lossy("\xe4\xb8x"), kFffd + "x");
  EXPECT_EQ(Utf8Lossy("\x80\x80"), kFffd + kFffd);              // stray continuations: one each
  EXPECT_EQ(Utf8Lossy("\xed\xa0\x80"), kFffd + kFffd + kFffd);  // a surrogate is never valid
  EXPECT_EQ(Utf8Lossy("\xf0\x9f\x9a"), kFffd);
  EXPECT_EQ(Utf8Lossy("\xc0\xaf"), kFffd + kFffd);  // overlong
}

TEST(Utf8, DecodeStepsOverInvalidBytesOneAtATime) {
  const std::string s = "a\xff\xc3\xa9";
  size_t pos = 0;
  EXPECT_EQ(DecodeUtf8(s, &pos), U'a');
  EXPECT_EQ(DecodeUtf8(s, &pos), kInvalidCodePoint);
  EXPECT_EQ(pos, 2u);
  EXPECT_EQ(DecodeUtf8(s, &pos), U'é');
  EXPECT_EQ(pos, s.size());
}

TEST(ByteLevel, MapsEveryByteAndBack) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string mapped;
  BytesToByteLevel(all, &mapped);
  EXPECT_TRUE(IsValidUtf8(mapped));
  std::string back;
  ASSERT_TRUE(ByteLevelToBytes(mapped, &back));
  EXPECT_EQ(back, all);
  std::string space;
  BytesToByteLevel(" \n", &space);
  EXPECT_EQ(space, "Ġ\u010a");  // GPT-2's well-known Ġ and Ċ
  std::string unused;
  EXPECT_FALSE(ByteLevelToBytes("中", &unused));
}

TEST(Nfc, ComposesAndReorders) {
  EXPECT_EQ(ToNfc("plain ascii"), "plain ascii");
  EXPECT_EQ(ToNfc("e\u0301"), "\u00e9");
  EXPECT_EQ(ToNfc("\u212b"), "\u00c5");  // Angstrom sign: singleton
  EXPECT_EQ(ToNfc("A\u030a"), "\u00c5");
  EXPECT_EQ(ToNfc("\u1e9b\u0323"), "\u1e9b\u0323");    // UAX #15's example
  EXPECT_EQ(ToNfc("q\u0307\u0323"), "q\u0323\u0307");  // canonical order, nothing composes
  EXPECT_EQ(ToNfc("\u1100\u1161\u11a8"), "\uac01");    // Hangul L V T
  EXPECT_EQ(ToNfc("\uac00\u11a8"), "\uac01");
  EXPECT_EQ(ToNfc("\u0958"), "\u0915\u093c");  // composition exclusion
  EXPECT_EQ(ToNfc("a\xff"
                  "e\u0301"),
            "a\xff\u00e9");  // invalid bytes pass through
}

}  // namespace
}  // namespace baton
