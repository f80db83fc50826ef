#include "stages/stage_partition.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <string>

namespace baton {

double LayerCost(const ModelConfig& c) {
  const double h = c.hidden_size;
  const double qkv = h * (c.q_size() + 2.0 * c.kv_size());
  const double out = static_cast<double>(c.q_size()) * h;
  const double mlp = (c.mlp == MlpKind::kSwiGlu ? 3.0 : 2.0) * h * c.intermediate_size;
  return qkv + out + mlp;
}

double HeadCost(const ModelConfig& c) { return static_cast<double>(c.vocab_size) * c.hidden_size; }

// A row gather: cheap next to a matmul, but not free.
double EmbeddingCost(const ModelConfig& c) { return 4.0 * c.hidden_size; }

static Status CheckOverride(const ModelConfig& c, int num_stages, const std::vector<int>& counts) {
  std::string list;
  for (int n : counts) {
    if (!list.empty()) list += ',';
    list += std::to_string(n);
  }
  if (static_cast<int>(counts.size()) != num_stages) {
    return Status::InvalidArgument("--layers-per-stage " + list + " has " + std::to_string(counts.size()) +
                                   " entries for " + std::to_string(num_stages) + " stages");
  }
  if (std::any_of(counts.begin(), counts.end(), [](int n) { return n <= 0; })) {
    return Status::InvalidArgument("--layers-per-stage " + list + ": every stage needs at least one layer");
  }
  const int total = std::accumulate(counts.begin(), counts.end(), 0);
  if (total != c.num_layers) {
    return Status::InvalidArgument("--layers-per-stage " + list + " sums to " + std::to_string(total) +
                                   " layers; the model has " + std::to_string(c.num_layers));
  }
  return Status::Ok();
}

StatusOr<std::vector<StageRange>> PartitionLayers(const ModelConfig& c, int num_stages,
                                                  const std::vector<int>& layers_per_stage) {
  const int layers = c.num_layers;
  if (num_stages < 1) return Status::InvalidArgument("need at least one pipeline stage");
  if (num_stages > layers) {
    return Status::InvalidArgument(std::to_string(num_stages) + " pipeline stages for a model of " +
                                   std::to_string(layers) + " layers: every stage needs at least one layer");
  }
  std::vector<int> counts = layers_per_stage;
  if (!counts.empty()) {
    BATON_RETURN_IF_ERROR(CheckOverride(c, num_stages, counts));
  } else {
    // cost(i, j): layers [i, j) as a stage; best[s][j]: least possible
    // maximum stage cost covering layers [0, j) with s stages.
    const double layer = LayerCost(c);
    auto cost = [&](int i, int j) {
      return (j - i) * layer + (i == 0 ? EmbeddingCost(c) : 0.0) + (j == layers ? HeadCost(c) : 0.0);
    };
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<std::vector<double>> best(num_stages + 1, std::vector<double>(layers + 1, inf));
    std::vector<std::vector<int>> cut(num_stages + 1, std::vector<int>(layers + 1, 0));
    best[0][0] = 0;
    for (int s = 1; s <= num_stages; ++s) {
      for (int j = s; j <= layers; ++j) {
        for (int i = s - 1; i < j; ++i) {
          const double v = std::max(best[s - 1][i], cost(i, j));
          // Prefer the later cut on ties, so earlier stages get the spare layer
          // (the last stage also samples, which the cost model leaves out).
          if (v <= best[s][j]) {
            best[s][j] = v;
            cut[s][j] = i;
          }
        }
      }
    }
    counts.assign(num_stages, 0);
    for (int s = num_stages, j = layers; s > 0; --s) {
      counts[s - 1] = j - cut[s][j];
      j = cut[s][j];
    }
  }
  std::vector<StageRange> ranges;
  int first = 0;
  for (int n : counts) {
    ranges.push_back(StageRange{first, first + n});
    first += n;
  }
  return ranges;
}

}  // namespace baton
