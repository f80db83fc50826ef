#include "runtime/training/causal_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {
namespace {

struct Layout {
  int64_t width, q_cols, kv_cols;
  int d, group;
  const float* Q(const float* base, int64_t row, int h) const { return base + row * width + int64_t{h} * d; }
  const float* K(const float* base, int64_t row, int kvh) const {
    return base + row * width + q_cols + int64_t{kvh} * d;
  }
  const float* V(const float* base, int64_t row, int kvh) const {
    return base + row * width + q_cols + kv_cols + int64_t{kvh} * d;
  }
};

Layout MakeLayout(const Tensor& qkv, const AttentionShape& s) {
  Layout l;
  l.width = qkv.dim(1);
  l.d = s.head_dim;
  l.q_cols = int64_t{s.num_heads} * s.head_dim;
  l.kv_cols = int64_t{s.num_kv_heads} * s.head_dim;
  l.group = s.num_heads / s.num_kv_heads;
  CpuCheck(l.width >= l.q_cols + 2 * l.kv_cols, "CausalAttention", "qkv too narrow");
  return l;
}

inline int FirstKey(const AttentionShape& s, int pos) {
  return s.sliding_window > 0 ? std::max(0, pos - s.sliding_window + 1) : 0;
}

}  // namespace

void CausalAttentionForward(const Tensor& qkv, const std::vector<int>& seq_starts, const AttentionShape& shape,
                            Tensor& out, Tensor& lse) {
  const Layout l = MakeLayout(qkv, shape);
  CpuCheck(out.dim(0) == qkv.dim(0) && out.dim(1) == l.q_cols, "CausalAttentionForward", "out must be [N, q]");
  CpuCheck(lse.dim(0) == qkv.dim(0) && lse.dim(1) == shape.num_heads, "CausalAttentionForward",
           "lse must be [N, heads]");
  const float* base = qkv.data<float>();
  const int64_t tasks = static_cast<int64_t>(seq_starts.size() - 1) * shape.num_heads;
#pragma omp parallel for schedule(dynamic)
  for (int64_t task = 0; task < tasks; ++task) {
    const int s = static_cast<int>(task / shape.num_heads), h = static_cast<int>(task % shape.num_heads);
    const int kvh = h / l.group;
    const int begin = seq_starts[s], len = seq_starts[s + 1] - begin;
    std::vector<float> scores(len), acc(l.d);
    for (int i = 0; i < len; ++i) {
      const float* q = l.Q(base, begin + i, h);
      float max_score = -INFINITY;
      for (int j = FirstKey(shape, i); j <= i; ++j) {
        const float* k = l.K(base, begin + j, kvh);
        float dot = 0;
        for (int c = 0; c < l.d; ++c) dot += q[c] * k[c];
        scores[j] = dot * shape.scale;
        max_score = std::max(max_score, scores[j]);
      }
      float denom = 0;
      for (int j = FirstKey(shape, i); j <= i; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        denom += scores[j];
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int j = FirstKey(shape, i); j <= i; ++j) {
        const float* v = l.V(base, begin + j, kvh);
        const float p = scores[j] / denom;
        for (int c = 0; c < l.d; ++c) acc[c] += p * v[c];
      }
      std::memcpy(out.data<float>() + int64_t{begin + i} * l.q_cols + int64_t{h} * l.d, acc.data(),
                  l.d * sizeof(float));
      lse.data<float>()[int64_t{begin + i} * shape.num_heads + h] = max_score + std::log(denom);
    }
  }
}

void CausalAttentionBackward(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                             const std::vector<int>& seq_starts, const AttentionShape& shape, Tensor& dqkv) {
  const Layout l = MakeLayout(qkv, shape);
  CpuCheck(dqkv.numel() == qkv.numel() && dout.numel() == out.numel(), "CausalAttentionBackward", "shape mismatch");
  std::memset(dqkv.data<float>(), 0, dqkv.nbytes());
  const float* base = qkv.data<float>();
  float* dbase = dqkv.data<float>();
  // One task per (sequence, kv head): the query heads of a GQA group all
  // write that kv head's dK/dV, so they run in the same task.
  const int64_t tasks = static_cast<int64_t>(seq_starts.size() - 1) * shape.num_kv_heads;
#pragma omp parallel for schedule(dynamic)
  for (int64_t task = 0; task < tasks; ++task) {
    const int s = static_cast<int>(task / shape.num_kv_heads), kvh = static_cast<int>(task % shape.num_kv_heads);
    const int begin = seq_starts[s], len = seq_starts[s + 1] - begin;
    std::vector<float> p(len);
    for (int h = kvh * l.group; h < (kvh + 1) * l.group; ++h) {
      for (int i = 0; i < len; ++i) {
        const int64_t row = begin + i;
        const float* q = l.Q(base, row, h);
        const float* o = out.data<float>() + row * l.q_cols + int64_t{h} * l.d;
        const float* g = dout.data<float>() + row * l.q_cols + int64_t{h} * l.d;
        const float row_lse = lse.data<float>()[row * shape.num_heads + h];
        // D_i = dO_i . O_i equals sum_j P_ij (dO_i . V_j).
        float di = 0;
        for (int c = 0; c < l.d; ++c) di += g[c] * o[c];
        float* dq = dbase + row * l.width + int64_t{h} * l.d;
        for (int j = FirstKey(shape, i); j <= i; ++j) {
          const float* k = l.K(base, begin + j, kvh);
          const float* v = l.V(base, begin + j, kvh);
          float dot = 0, dp = 0;
          for (int c = 0; c < l.d; ++c) {
            dot += q[c] * k[c];
            dp += g[c] * v[c];
          }
          const float pij = std::exp(dot * shape.scale - row_lse);
          const float ds = pij * (dp - di) * shape.scale;  // d(score before scaling)
          float* dk = dbase + int64_t{begin + j} * l.width + l.q_cols + int64_t{kvh} * l.d;
          float* dv = dk + l.kv_cols;
          for (int c = 0; c < l.d; ++c) {
            dv[c] += pij * g[c];
            dq[c] += ds * k[c];
            dk[c] += ds * q[c];
          }
        }
      }
    }
  }
}

}  // namespace baton
