#include "model/eigen.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <string>

#include "common/errors.hpp"

namespace lookalike::model {
namespace {

using Matrix = std::vector<double>;  // n x n, row-major

// Reduces the symmetric matrix a to tridiagonal form. Step k maps column k below the diagonal to
// a multiple of e_1 with the reflector H_k = I - beta_k v_k v_k^T acting on indices k+1..n-1,
// and updates the trailing block A22 <- H_k A22 H_k as A22 - v w^T - w v^T (w from p = beta
// A22 v). v_k is kept in row k of a (columns k+1..n-1), beta_k in beta. diag and off receive T:
// off[i] couples i and i+1.
void tridiagonalise(int n, Matrix &a, std::vector<double> &beta, std::vector<double> &diag,
                    std::vector<double> &off, const std::function<void()> &poll) {
  const size_t N = size_t(n);
  std::vector<double> p(N), w(N);
  for (int k = 0; k + 2 < n; ++k) {
    poll();
    double *row_k = &a[size_t(k) * N];
    diag[size_t(k)] = row_k[k];
    const int m = n - k - 1;
    double *v = row_k + k + 1;  // column k below the diagonal (= row k right of it)
    double below = 0;           // squared norm of v[1..m-1]
    for (int i = 1; i < m; ++i) below += v[i] * v[i];
    if (below == 0) {  // already a multiple of e_1: no reflection
      off[size_t(k)] = v[0];
      beta[size_t(k)] = 0;
      continue;
    }
    // alpha = -sign(v0) |v| so that v0 - alpha adds magnitudes (no cancellation).
    const double norm = std::sqrt(below + v[0] * v[0]);
    const double alpha = v[0] > 0 ? -norm : norm;
    v[0] -= alpha;
    const double b = 2.0 / (below + v[0] * v[0]);
    off[size_t(k)] = alpha;
    beta[size_t(k)] = b;
    double pv = 0;
    for (int i = 0; i < m; ++i) {
      const double *r = &a[size_t(k + 1 + i) * N + size_t(k + 1)];
      double s = 0;
      for (int j = 0; j < m; ++j) s += r[j] * v[j];
      p[size_t(i)] = b * s;
      pv += p[size_t(i)] * v[i];
    }
    const double half = 0.5 * b * pv;
    for (int i = 0; i < m; ++i) w[size_t(i)] = p[size_t(i)] - half * v[i];
    for (int i = 0; i < m; ++i) {
      double *r = &a[size_t(k + 1 + i) * N + size_t(k + 1)];
      const double vi = v[i], wi = w[size_t(i)];
      for (int j = 0; j < m; ++j) r[j] -= vi * w[size_t(j)] + wi * v[j];
    }
  }
  if (n >= 2) {
    diag[N - 2] = a[(N - 2) * N + (N - 2)];
    off[N - 2] = a[(N - 1) * N + (N - 2)];
  }
  diag[N - 1] = a[(N - 1) * N + (N - 1)];
  off[N - 1] = 0;
}

// Q = H_0 H_1 ... H_{n-3}, built from the right (each H_k touches only the trailing block of
// what has been built), returned transposed: row i of qt is column i of Q.
Matrix accumulate_transposed(int n, const Matrix &a, const std::vector<double> &beta,
                             const std::function<void()> &poll) {
  const size_t N = size_t(n);
  Matrix q(N * N, 0.0);
  for (size_t i = 0; i < N; ++i) q[i * N + i] = 1.0;
  std::vector<double> w(N);
  for (int k = n - 3; k >= 0; --k) {
    if (beta[size_t(k)] == 0) continue;
    poll();
    const int m = n - k - 1;
    const double *v = &a[size_t(k) * N + size_t(k + 1)];
    // w^T = v^T Q22, then Q22 -= beta v w^T
    std::fill(w.begin(), w.begin() + m, 0.0);
    for (int i = 0; i < m; ++i) {
      const double *r = &q[size_t(k + 1 + i) * N + size_t(k + 1)];
      const double vi = v[i];
      for (int j = 0; j < m; ++j) w[size_t(j)] += vi * r[j];
    }
    const double b = beta[size_t(k)];
    for (int i = 0; i < m; ++i) {
      double *r = &q[size_t(k + 1 + i) * N + size_t(k + 1)];
      const double bv = b * v[i];
      for (int j = 0; j < m; ++j) r[j] -= bv * w[size_t(j)];
    }
  }
  for (size_t i = 0; i < N; ++i)
    for (size_t j = i + 1; j < N; ++j) std::swap(q[i * N + j], q[j * N + i]);
  return q;
}

// The implicit QL iteration on the tridiagonal (diag, off): each sweep chases a bulge up the
// unreduced block l..m with plane rotations, shifted by the eigenvalue of the leading 2 x 2 that
// is closer to diag[l]. Rotation i mixes rows i and i+1 of qt (columns of Q).
void tridiagonal_ql(int n, std::vector<double> &diag, std::vector<double> &off, Matrix &qt,
                    const std::function<void()> &poll) {
  const size_t N = size_t(n);
  const double eps = std::numeric_limits<double>::epsilon();
  const long limit = 30L * n;
  long sweeps = 0;
  for (int l = 0; l < n; ++l) {
    for (;;) {
      int m = l;
      while (m < n - 1 && std::abs(off[size_t(m)]) >
                              eps * (std::abs(diag[size_t(m)]) + std::abs(diag[size_t(m + 1)])))
        ++m;
      if (m == l) break;  // diag[l] is an eigenvalue
      if (++sweeps > limit)
        throw Error(sqlstate::kInternalError, "the eigendecomposition did not converge after " +
                                                  std::to_string(limit) + " QL sweeps");
      poll();
      double g = (diag[size_t(l + 1)] - diag[size_t(l)]) / (2.0 * off[size_t(l)]);
      double r = std::hypot(g, 1.0);
      g = diag[size_t(m)] - diag[size_t(l)] + off[size_t(l)] / (g + std::copysign(r, g));
      double s = 1, c = 1, p = 0;
      bool split = false;
      for (int i = m - 1; i >= l; --i) {
        const double f = s * off[size_t(i)];
        const double b = c * off[size_t(i)];
        r = std::hypot(f, g);
        off[size_t(i + 1)] = r;
        if (r == 0) {  // the block splits here: restart on the smaller one
          diag[size_t(i + 1)] -= p;
          off[size_t(m)] = 0;
          split = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = diag[size_t(i + 1)] - p;
        r = (diag[size_t(i)] - g) * s + 2.0 * c * b;
        p = s * r;
        diag[size_t(i + 1)] = g + p;
        g = c * r - b;
        double *zi = &qt[size_t(i) * N];
        double *zn = &qt[size_t(i + 1) * N];
        for (size_t k = 0; k < N; ++k) {
          const double t = zn[k];
          zn[k] = s * zi[k] + c * t;
          zi[k] = c * zi[k] - s * t;
        }
      }
      if (split) continue;
      diag[size_t(l)] -= p;
      off[size_t(l)] = g;
      off[size_t(m)] = 0;
    }
  }
}

}  // namespace

void symmetric_eigen(int n, std::vector<double> &a, std::vector<double> &values,
                     const std::function<void()> &poll) {
  if (n < 1 || a.size() != size_t(n) * size_t(n))
    throw Error(sqlstate::kInternalError, "symmetric_eigen: the matrix is not n x n");
  const size_t N = size_t(n);
  std::vector<double> beta(N, 0.0), diag(N), off(N);
  tridiagonalise(n, a, beta, diag, off, poll);
  Matrix qt = accumulate_transposed(n, a, beta, poll);
  tridiagonal_ql(n, diag, off, qt, poll);
  // Largest first; equal eigenvalues keep their order (deterministic).
  std::vector<int> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int x, int y) { return diag[size_t(x)] > diag[size_t(y)]; });
  values.resize(N);
  for (size_t i = 0; i < N; ++i) {
    const size_t src = size_t(order[i]);
    values[i] = diag[src];
    std::copy(qt.begin() + std::ptrdiff_t(src * N), qt.begin() + std::ptrdiff_t((src + 1) * N),
              a.begin() + std::ptrdiff_t(i * N));
  }
}

}  // namespace lookalike::model
