#include "streamrec/hungarian.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

namespace streamrec {

std::vector<int32_t> SolveAssignment(const std::vector<double>& cost, int rows, int cols) {
  // Shortest augmenting paths with potentials (the O(n^2 m) form of Kuhn-Munkres); 1-based
  // with column 0 as the virtual start.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(rows + 1, 0.0), v(cols + 1, 0.0);
  std::vector<int> p(cols + 1, 0), way(cols + 1, 0);
  std::vector<double> minv(cols + 1);
  std::vector<char> used(cols + 1);
  for (int i = 1; i <= rows; ++i) {
    p[0] = i;
    int j0 = 0;
    std::fill(minv.begin(), minv.end(), inf);
    std::fill(used.begin(), used.end(), 0);
    do {
      used[j0] = 1;
      const int i0 = p[j0];
      double delta = inf;
      int j1 = 0;
      for (int j = 1; j <= cols; ++j) {
        if (used[j]) continue;
        const double cur = cost[static_cast<size_t>(i0 - 1) * cols + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int j = 0; j <= cols; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      const int j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int32_t> row_to_col(rows, -1);
  for (int j = 1; j <= cols; ++j) {
    if (p[j] != 0) row_to_col[p[j] - 1] = j - 1;
  }
  return row_to_col;
}

StatusOr<CentreMatching> MatchCentres(const float* old_centres, int k_old, const float* new_centres,
                                      int k_new, int d, const CentreMatchOptions& options) {
  if (d < 1) return Status::InvalidArgument("dimension d=" + std::to_string(d) + " should be >= 1");
  if (k_old < 0 || k_new < 0) {
    return Status::InvalidArgument("centre counts should be >= 0, got k_old=" +
                                   std::to_string(k_old) + " k_new=" + std::to_string(k_new));
  }
  if (!(options.max_distance > 0)) {
    return Status::InvalidArgument("max_distance " + std::to_string(options.max_distance) +
                                   " should be > 0");
  }
  for (auto [c, k, what] :
       {std::tuple{old_centres, k_old, "old"}, std::tuple{new_centres, k_new, "new"}}) {
    for (int64_t t = 0; t < static_cast<int64_t>(k) * d; ++t) {
      if (!std::isfinite(c[t])) {
        return Status::InvalidArgument(std::string(what) + " centre " + std::to_string(t / d) +
                                       " column " + std::to_string(t % d) + " is not finite");
      }
    }
  }
  // Squared distances, new (rows) x old (columns).
  std::vector<double> dist(static_cast<size_t>(k_new) * k_old);
  for (int i = 0; i < k_new; ++i) {
    for (int j = 0; j < k_old; ++j) {
      double s = 0;
      for (int l = 0; l < d; ++l) {
        const double diff = static_cast<double>(new_centres[i * d + l]) - old_centres[j * d + l];
        s += diff * diff;
      }
      dist[static_cast<size_t>(i) * k_old + j] = s;
    }
  }

  CentreMatching m;
  m.new_to_old.assign(k_new, -1);
  const double cap = options.max_distance * options.max_distance;
  // A cap so large that the padded costs would overflow is no cap.
  const bool capped = std::isfinite(4 * (std::min(k_new, k_old) + 1) * cap + 1);
  if (k_new > 0 && k_old > 0) {
    if (!capped) {
      // Rectangular: pad the shorter side with zero-cost dummies by putting it on the rows.
      if (k_new <= k_old) {
        const std::vector<int32_t> a = SolveAssignment(dist, k_new, k_old);
        for (int i = 0; i < k_new; ++i) m.new_to_old[i] = a[i];
      } else {
        std::vector<double> t(static_cast<size_t>(k_old) * k_new);
        for (int i = 0; i < k_new; ++i) {
          for (int j = 0; j < k_old; ++j) {
            t[static_cast<size_t>(j) * k_new + i] = dist[i * k_old + j];
          }
        }
        const std::vector<int32_t> a = SolveAssignment(t, k_old, k_new);
        for (int j = 0; j < k_old; ++j) m.new_to_old[a[j]] = j;
      }
    } else {
      // Square problem of size k_new + k_old: rows = new centres then "death" slots, columns =
      // old centres then "birth" slots. A birth and a death each cost `penalty`, more than the
      // squared distances of any whole matching can differ by, so the solution first has the
      // most pairs within the cap, then the lowest total distance; refused pairs cost more than
      // anything else.
      const int size = k_new + k_old;
      const double penalty = (std::min(k_new, k_old) + 1) * cap;
      const double refused = 4 * penalty + 1;
      std::vector<double> c(static_cast<size_t>(size) * size, 0.0);
      for (int r = 0; r < size; ++r) {
        for (int col = 0; col < size; ++col) {
          double v = 0;
          if (r < k_new && col < k_old) {
            const double dd = dist[static_cast<size_t>(r) * k_old + col];
            v = dd <= cap ? dd : refused;
          } else if (r < k_new || col < k_old) {
            v = penalty;  // birth of new r, or death of old col
          }
          c[static_cast<size_t>(r) * size + col] = v;
        }
      }
      const std::vector<int32_t> a = SolveAssignment(c, size, size);
      for (int i = 0; i < k_new; ++i) {
        if (a[i] < k_old && dist[static_cast<size_t>(i) * k_old + a[i]] <= cap) {
          m.new_to_old[i] = a[i];
        }
      }
    }
  }
  std::vector<char> matched(k_old, 0);
  for (int i = 0; i < k_new; ++i) {
    if (m.new_to_old[i] >= 0) {
      matched[m.new_to_old[i]] = 1;
      m.total_squared_distance += dist[static_cast<size_t>(i) * k_old + m.new_to_old[i]];
    } else {
      m.births.push_back(i);
    }
  }
  for (int j = 0; j < k_old; ++j) {
    if (!matched[j]) m.deaths.push_back(j);
  }
  return m;
}

std::vector<int32_t> StableClusterIds(const CentreMatching& matching,
                                      const std::vector<int32_t>& old_ids, int32_t* next_id) {
  std::vector<int32_t> ids(matching.new_to_old.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t old = matching.new_to_old[i];
    if (old >= 0 && old < static_cast<int32_t>(old_ids.size())) {
      ids[i] = old_ids[old];
    } else {
      ids[i] = (*next_id)++;
    }
  }
  return ids;
}

}  // namespace streamrec
