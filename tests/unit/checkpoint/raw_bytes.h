// Byte-level helpers for checkpoint tests: files are built and inspected by
// hand here, independently of the code under test.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace baton::testing {

// 8-byte little-endian header length, the header, then the data.
inline std::string RawSafetensors(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The header of a safetensors file, parsed by the test itself.
struct RawHeader {
  uint64_t length = 0;
  nlohmann::json json;
};

inline RawHeader ParseRawHeader(const std::string& bytes) {
  RawHeader h;
  for (int i = 0; i < 8; ++i) h.length |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  h.json = nlohmann::json::parse(bytes.substr(8, h.length));
  return h;
}

// The stored bytes of tensor `name`.
inline std::string RawTensorBytes(const std::string& bytes, const std::string& name) {
  RawHeader h = ParseRawHeader(bytes);
  uint64_t begin = h.json.at(name).at("data_offsets")[0].get<uint64_t>();
  uint64_t end = h.json.at(name).at("data_offsets")[1].get<uint64_t>();
  return bytes.substr(8 + h.length + begin, end - begin);
}

inline float LeF32(const std::string& b, size_t i) {
  uint32_t u = 0;
  for (int k = 0; k < 4; ++k) u |= static_cast<uint32_t>(static_cast<unsigned char>(b[4 * i + k])) << (8 * k);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// bfloat16 is the top half of a float32.
inline float LeBf16(const std::string& b, size_t i) {
  uint32_t u = static_cast<uint32_t>(static_cast<unsigned char>(b[2 * i])) |
               static_cast<uint32_t>(static_cast<unsigned char>(b[2 * i + 1])) << 8;
  u <<= 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace baton::testing
