#include "runtime/tokenizer/unicode_nfc.h"

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "runtime/tokenizer/unicode_nfc_tables.h"
#include "runtime/tokenizer/utf8.h"

namespace baton {
namespace {

// Hangul syllables decompose and compose by arithmetic (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount;
constexpr char32_t kSCount = kLCount * kNCount;

// An invalid input byte travels through as a code point no character has,
// tagged so it can be written back as the same byte.
constexpr char32_t kRawByteTag = 0x80000000;

int CombiningClass(char32_t c) {
  if (c < 0x300 || c >= kRawByteTag) return 0;
  const CombiningClassRange* begin = kCombiningClassRanges;
  const CombiningClassRange* end = begin + kCombiningClassRangeCount;
  auto it = std::upper_bound(begin, end, c, [](char32_t v, const CombiningClassRange& r) { return v < r.first; });
  if (it == begin) return 0;
  --it;
  return c <= it->last ? it->combining_class : 0;
}

const CanonicalDecomposition* FindDecomposition(char32_t c) {
  if (c < 0xC0 || c >= kRawByteTag) return nullptr;
  const CanonicalDecomposition* begin = kCanonicalDecompositions;
  const CanonicalDecomposition* end = begin + kCanonicalDecompositionCount;
  auto it =
      std::lower_bound(begin, end, c, [](const CanonicalDecomposition& d, char32_t v) { return d.code_point < v; });
  return it != end && it->code_point == c ? it : nullptr;
}

void Decompose(char32_t c, std::vector<char32_t>* out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    const char32_t s = c - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  const CanonicalDecomposition* d = FindDecomposition(c);
  if (d == nullptr) {
    out->push_back(c);
    return;
  }
  Decompose(d->first, out);
  if (d->second != 0) Decompose(d->second, out);
}

const std::unordered_map<uint64_t, char32_t>& CompositionMap() {
  static const auto* map = [] {
    auto* m = new std::unordered_map<uint64_t, char32_t>();
    for (size_t i = 0; i < kCanonicalDecompositionCount; ++i) {
      const CanonicalDecomposition& d = kCanonicalDecompositions[i];
      if (d.composes) (*m)[(static_cast<uint64_t>(d.first) << 32) | d.second] = d.code_point;
    }
    return m;
  }();
  return *map;
}

// The primary composite of `a` followed by `b`, or 0 if there is none.
char32_t Compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto& map = CompositionMap();
  auto it = map.find((static_cast<uint64_t>(a) << 32) | b);
  return it == map.end() ? 0 : it->second;
}

}  // namespace

std::string ToNfc(std::string_view text) {
  // Nothing below U+00C0 decomposes or combines, so ASCII-and-Latin-1-only
  // text (all bytes < 0xC3) is already in NFC.
  if (std::all_of(text.begin(), text.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0xC3; })) {
    return std::string(text);
  }
  std::vector<char32_t> chars;
  chars.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t c = DecodeUtf8(text, &pos);
    if (c == kInvalidCodePoint) {
      chars.push_back(kRawByteTag | static_cast<unsigned char>(text[start]));
    } else {
      Decompose(c, &chars);
    }
  }
  // Canonical ordering: stable-sort each run of non-starters by class.
  for (size_t i = 0; i < chars.size();) {
    if (CombiningClass(chars[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < chars.size() && CombiningClass(chars[j]) != 0) ++j;
    std::stable_sort(chars.begin() + i, chars.begin() + j,
                     [](char32_t a, char32_t b) { return CombiningClass(a) < CombiningClass(b); });
    i = j;
  }
  // Canonical composition: each character joins the last starter unless a
  // character in between blocks it (same or higher class, or a starter).
  std::vector<char32_t> composed;
  composed.reserve(chars.size());
  size_t starter = SIZE_MAX;
  int last_class = 0;
  for (char32_t c : chars) {
    const int cc = CombiningClass(c);
    if (starter != SIZE_MAX) {
      const bool adjacent = composed.size() - 1 == starter;
      if (adjacent || (last_class != 0 && last_class < cc)) {
        if (char32_t p = Compose(composed[starter], c); p != 0) {
          composed[starter] = p;
          continue;
        }
      }
    }
    if (cc == 0) starter = composed.size();
    last_class = cc;
    composed.push_back(c);
  }
  std::string out;
  out.reserve(text.size());
  for (char32_t c : composed) {
    if (c >= kRawByteTag) {
      out.push_back(static_cast<char>(c & 0xFF));
    } else {
      AppendUtf8(c, &out);
    }
  }
  return out;
}

}  // namespace baton
