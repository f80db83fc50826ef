#include "runtime/backend/cpu/cpu_backend.h"

#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "runtime/backend/cpu/panel_matmul.h"

namespace baton {

void CpuCheck(bool ok, const char* op, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "baton: fatal: cpu %s: %s\n", op, what);
  std::abort();
}

bool CpuHasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

CpuBackend::CpuBackend(int num_threads) {
#ifdef _OPENMP
  threads_ = num_threads > 0 ? num_threads : omp_get_max_threads();
#endif
  if (num_threads > 0) {
    openblas_set_num_threads(num_threads);
#ifdef _OPENMP
    omp_set_num_threads(num_threads);
#endif
  }
}

Tensor CpuBackend::Allocate(const Shape& shape, DType dtype) { return Tensor::Empty(shape, dtype); }

Tensor CpuBackend::AllocateResident(const Shape& shape, DType dtype) { return Tensor::Zeros(shape, dtype); }

Tensor CpuBackend::Upload(const Tensor& host, DType dtype) {
  if (host.dtype() == dtype) return host.Clone();
  CpuCheck(dtype == DType::kF32 && IsFloatDType(host.dtype()), "Upload", "only float -> f32 conversion");
  return host.ToF32();
}

Tensor CpuBackend::ToHostF32(const Tensor& t) { return t.dtype() == DType::kF32 ? t : t.ToF32(); }

void CpuBackend::Embedding(const Tensor& ids, const Tensor& table, Tensor& out) {
  const int64_t n = ids.dim(0), h = table.dim(1), vocab = table.dim(0);
  CpuCheck(out.dim(0) == n && out.dim(1) == h, "Embedding", "out must be [N, hidden]");
  const int32_t* id = ids.data<int32_t>();
  const bool packed = PanelsOf(table) != nullptr;  // a table tied to the LM head
  for (int64_t i = 0; i < n; ++i) {
    CpuCheck(id[i] >= 0 && id[i] < vocab, "Embedding", "id out of range");
    if (packed) {
      PanelRow(table, id[i], out.data<float>() + i * h);
      continue;
    }
    std::memcpy(out.data<float>() + i * h, table.data<float>() + id[i] * h, h * sizeof(float));
  }
}

void CpuBackend::AddEmbedding(const Tensor& ids, const Tensor& table, Tensor& x) {
  const int64_t n = ids.dim(0), h = table.dim(1), rows = table.dim(0);
  CpuCheck(x.dim(0) == n && x.dim(1) == h, "AddEmbedding", "x must be [N, hidden]");
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    CpuCheck(id[i] >= 0 && id[i] < rows, "AddEmbedding", "id out of range");
    float* dst = x.data<float>() + i * h;
    const float* src = table.data<float>() + id[i] * h;
    for (int64_t j = 0; j < h; ++j) dst[j] += src[j];
  }
}

void CpuBackend::Linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  CpuCheck(w.dim(1) == k, "Linear", "w must be [out, in] with in == x's columns");
  CpuCheck(y.dim(0) == m && y.dim(1) == n, "Linear", "y must be [rows of x, out]");
  float* out = y.data<float>();
  if (PanelsOf(w) != nullptr) {
    PanelMatmul(x.data<float>(), m, w, out, threads_);
  } else if (m == 1) {
    // One row (batch-1 decode) is a matrix-vector product: gemv streams the
    // weight once, which is all this step can be bound by.
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w.data<float>(), k, x.data<float>(), 1, 0.0f, out, 1);
  } else if (m > 0) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data<float>(), k, w.data<float>(), k, 0.0f,
                out, n);
  }
  if (bias.defined() && bias.numel() > 0) {
    CpuCheck(bias.numel() == n, "Linear", "bias must be [out]");
    const float* b = bias.data<float>();
    for (int64_t i = 0; i < m; ++i) {
      float* row = out + i * n;
      for (int64_t j = 0; j < n; ++j) row[j] += b[j];
    }
  }
}

void CpuBackend::PackLinearWeight(Tensor& w) {
  // BATON_CPU_PANELS=off keeps OpenBLAS on every matmul: the baseline the
  // benchmarks measure the panels against, in the same run.
  static const bool panels_off = [] {
    const char* v = std::getenv("BATON_CPU_PANELS");
    return v != nullptr && (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0);
  }();
  if (panels_off) return;
  if (w.dtype() == DType::kF32 && w.ndim() == 2 && PanelsOf(w) == nullptr) w = PackPanels(w);
}

void CpuBackend::AddInPlace(Tensor& x, const Tensor& y) {
  CpuCheck(x.numel() == y.numel(), "AddInPlace", "x and y differ in size");
  float* a = x.data<float>();
  const float* b = y.data<float>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void CpuBackend::GatherRows(const Tensor& x, const Tensor& rows, Tensor& out) {
  const int64_t r = rows.dim(0), h = x.dim(1);
  CpuCheck(out.dim(0) == r && out.dim(1) == h, "GatherRows", "out must be [rows, features]");
  const int32_t* idx = rows.data<int32_t>();
  for (int64_t i = 0; i < r; ++i) {
    CpuCheck(idx[i] >= 0 && idx[i] < x.dim(0), "GatherRows", "row out of range");
    std::memcpy(out.data<float>() + i * h, x.data<float>() + idx[i] * h, h * sizeof(float));
  }
}

void CpuBackend::SampleTokens(const Tensor& logits, const SampleBatch& batch, std::vector<int32_t>& tokens) {
  CpuCheck(logits.ndim() == 2 && logits.dim(0) == static_cast<int64_t>(batch.rows.size()), "SampleTokens",
           "logits must be [rows, vocab]");
  tokens.assign(batch.rows.size(), kSampleOnHost);
}

void CpuBackend::CopyToDevice(const Tensor& source, Tensor& device) {
  CpuCheck(source.dtype() == device.dtype() && source.numel() == device.numel(), "CopyToDevice",
           "source and destination tensors must match in dtype and size");
  if (source.nbytes() > 0) std::memcpy(device.raw(), source.raw(), source.nbytes());
}

}  // namespace baton
