#include "runtime/checkpoint/safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

namespace baton {
namespace {

using nlohmann::json;

// The reference implementation refuses headers above 100 MB; a larger
// length is a corrupt or hostile file, not a real checkpoint.
constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;

// Element sizes of the safetensors dtypes Baton does not load, so that their
// byte ranges can still be checked (and overlaps with loadable tensors seen).
int UnsupportedDTypeBits(std::string_view name) {
  static constexpr struct {
    std::string_view name;
    int bits;
  } kDTypes[] = {
      {"BOOL", 8}, {"U8", 8},   {"F8_E4M3", 8}, {"F8_E5M2", 8}, {"F8_E8M0", 8}, {"I16", 16},
      {"U16", 16}, {"U32", 32}, {"I64", 64},    {"U64", 64},    {"F64", 64},    {"C64", 64},
  };
  for (const auto& d : kDTypes) {
    if (d.name == name) return d.bits;
  }
  return 0;
}

std::string Quote(std::string_view s) {
  std::string q;
  q.reserve(s.size() + 2);
  q.push_back('\'');
  q.append(s);
  q.push_back('\'');
  return q;
}

// A parsed, not yet range-checked header entry.
struct RawEntry {
  std::string name;
  std::string dtype_name;
  bool supported = false;
  DType dtype = DType::kF32;
  int bits = 0;
  Shape shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

class HeaderParser {
 public:
  explicit HeaderParser(const std::string& path) : path_(path) {}

  Status Error(const std::string& what) const { return Status::DataLoss(path_ + ": " + what); }
  Status TensorError(const std::string& name, const std::string& what) const {
    return Error("tensor " + Quote(name) + ": " + what);
  }

  Status ParseEntry(const std::string& name, const json& v, RawEntry* e) const {
    e->name = name;
    if (!v.is_object()) return TensorError(name, "header entry is not an object (got " + v.dump() + ")");

    auto dtype = v.find("dtype");
    if (dtype == v.end()) return TensorError(name, "field 'dtype' is missing");
    if (!dtype->is_string()) return TensorError(name, "field 'dtype' is not a string (got " + dtype->dump() + ")");
    e->dtype_name = dtype->get<std::string>();
    StatusOr<DType> parsed = ParseDType(e->dtype_name);
    if (parsed.ok()) {
      e->supported = true;
      e->dtype = *parsed;
      e->bits = DTypeBits(*parsed);
    } else {
      e->bits = UnsupportedDTypeBits(e->dtype_name);
      if (e->bits == 0) return TensorError(name, "unknown dtype " + Quote(e->dtype_name));
    }

    auto shape = v.find("shape");
    if (shape == v.end()) return TensorError(name, "field 'shape' is missing");
    if (!shape->is_array()) return TensorError(name, "field 'shape' is not an array (got " + shape->dump() + ")");
    for (const json& d : *shape) {
      if (!d.is_number_integer()) {
        return TensorError(name, "field 'shape' has a non-integer dimension (got " + shape->dump() + ")");
      }
      if (d.is_number_unsigned() ? d.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()}
                                 : d.get<int64_t>() < 0) {
        return TensorError(name, "field 'shape' has a negative or huge dimension (got " + shape->dump() + ")");
      }
      e->shape.push_back(d.get<int64_t>());
    }

    auto offsets = v.find("data_offsets");
    if (offsets == v.end()) return TensorError(name, "field 'data_offsets' is missing");
    if (!offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned()) {
      return TensorError(name, "field 'data_offsets' is not [begin, end] (got " + offsets->dump() + ")");
    }
    e->begin = (*offsets)[0].get<uint64_t>();
    e->end = (*offsets)[1].get<uint64_t>();
    if (e->begin > e->end) {
      return TensorError(name, "field 'data_offsets' has begin > end (got " + offsets->dump() + ")");
    }
    return Status::Ok();
  }

  // Checks the entry's byte range against its shape and the data region.
  Status CheckSize(const RawEntry& e, uint64_t data_size) const {
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
        return TensorError(e.name, "shape " + ShapeToString(e.shape) + " has too many elements");
      }
    }
    uint64_t bits = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(e.bits), &bits)) {
      return TensorError(e.name, "shape " + ShapeToString(e.shape) + " has too many elements");
    }
    uint64_t want = bits / 8 + (bits % 8 != 0);
    if (e.end > data_size) {
      return TensorError(e.name, "field 'data_offsets' [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                     "] ends past the data region (" + std::to_string(data_size) +
                                     " bytes; is the file truncated?)");
    }
    if (e.end - e.begin != want) {
      return TensorError(e.name, "data_offsets span " + std::to_string(e.end - e.begin) + " bytes but dtype " +
                                     e.dtype_name + " with shape " + ShapeToString(e.shape) + " needs " +
                                     std::to_string(want));
    }
    return Status::Ok();
  }

 private:
  const std::string& path_;
};

}  // namespace

StatusOr<std::shared_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string msg = path + ": cannot open: " + std::strerror(err);
    return err == ENOENT || err == ENOTDIR ? Status::NotFound(msg) : Status::InvalidArgument(msg);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(path + ": not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Status::DataLoss(path + ": file is " + std::to_string(size) +
                            " bytes, shorter than the 8-byte header length");
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping keeps the file open
  if (p == MAP_FAILED) return Status::Internal(path + ": mmap failed: " + std::strerror(map_errno));

  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->file_size_ = size;
  file->mapping_ = std::shared_ptr<void>(p, [size](void* q) { ::munmap(q, size); });
  file->base_ = static_cast<const char*>(p);

  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) {  // little-endian u64, whatever the host
    header_len |= static_cast<uint64_t>(static_cast<unsigned char>(file->base_[i])) << (8 * i);
  }
  if (header_len > kMaxHeaderBytes) {
    return Status::DataLoss(path + ": header length " + std::to_string(header_len) + " is absurd (limit " +
                            std::to_string(kMaxHeaderBytes) + ")");
  }
  if (header_len > size - 8) {
    return Status::DataLoss(path + ": header length " + std::to_string(header_len) +
                            " runs past the end of the file (" + std::to_string(size) + " bytes)");
  }
  std::string_view header(file->base_ + 8, header_len);
  BATON_RETURN_IF_ERROR(file->ParseHeader(header, 8 + header_len, size - 8 - header_len));
  return file;
}

Status SafetensorsFile::ParseHeader(std::string_view header, uint64_t data_begin, uint64_t data_size) {
  HeaderParser parser(path_);
  json j = json::parse(header.begin(), header.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return parser.Error("header is not valid JSON");
  if (!j.is_object()) return parser.Error("header is not a JSON object");

  std::vector<RawEntry> entries;
  entries.reserve(j.size());
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) return parser.Error("field '__metadata__' is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          return parser.Error("field '__metadata__." + mk + "' is not a string (got " + mv.dump() + ")");
        }
        metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    RawEntry e;
    BATON_RETURN_IF_ERROR(parser.ParseEntry(key, value, &e));
    BATON_RETURN_IF_ERROR(parser.CheckSize(e, data_size));
    entries.push_back(std::move(e));
  }

  // Overlaps: sorted by begin, each non-empty range must start at or after
  // the end of the previous one. Gaps are tolerated (the format forbids
  // them, but they are harmless to a reader).
  std::sort(entries.begin(), entries.end(), [](const RawEntry& a, const RawEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const RawEntry* prev = nullptr;
  for (const RawEntry& e : entries) {
    if (e.begin == e.end) continue;
    if (prev != nullptr && e.begin < prev->end) {
      return parser.Error("tensors " + Quote(prev->name) + " [" + std::to_string(prev->begin) + ", " +
                          std::to_string(prev->end) + "] and " + Quote(e.name) + " [" + std::to_string(e.begin) + ", " +
                          std::to_string(e.end) + "] overlap");
    }
    prev = &e;
  }

  for (RawEntry& e : entries) {
    if (!e.supported) {
      unsupported_[e.name] = e.dtype_name;
      continue;
    }
    index_[e.name] = tensors_.size();
    tensors_.push_back(
        TensorInfo{std::move(e.name), e.dtype, std::move(e.shape), data_begin + e.begin, e.end - e.begin});
  }
  return Status::Ok();
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Tensor SafetensorsFile::View(const TensorInfo& info) const {
  const char* data = base_ + info.offset;
  const size_t align = static_cast<size_t>(std::max(DTypeBits(info.dtype) / 8, 1));
  if (reinterpret_cast<uintptr_t>(data) % align != 0) {
    Tensor copy = Tensor::Empty(info.shape, info.dtype);
    if (info.nbytes) std::memcpy(copy.raw(), data, info.nbytes);
    return copy;
  }
  return Tensor::View(mapping_, const_cast<char*>(data), info.shape, info.dtype);
}

}  // namespace baton
