// Fitting a PCA whitening of a set of embeddings (lookalike.fit_projection()). Pure C++; LibTorch
// does the linear algebra (kept out of this header, so the SQL side compiles without it).
//
// For rows x_1..x_n (dimension d) with mean m and covariance C = sum (x - m)(x - m)^T / n, with
// eigenvalues l_1 >= l_2 >= ... and unit eigenvectors v_i, the projection is
//   y_i = s_i * v_i . (x - m),   s_i = (max(l_i, 0) + epsilon * mean(l))^(-power),   i = 1..k
// power 0 is a plain PCA rotation (or reduction to k components), 0.5 a full whitening shrunk by
// epsilon, and values in between a mild one. The sign of each v_i is made deterministic (its
// largest component positive). No labels are involved: only the rows given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace lookalike::model {

struct WhiteningFit {
  int dims_in = 0;
  int dims_out = 0;
  std::vector<float> mean;          // dims_in
  std::vector<float> matrix;        // dims_out x dims_in, row-major: s_i * v_i
  std::vector<double> eigenvalues;  // all dims_in, largest first
};

class CovarianceAccumulator;
WhiteningFit fit_whitening(CovarianceAccumulator &acc, double epsilon, double power, int components,
                           const std::function<void()> &poll);

// Accumulates the sum and the Gram matrix of rows, in float64, in batches.
class CovarianceAccumulator {
 public:
  explicit CovarianceAccumulator(int dims);
  ~CovarianceAccumulator();
  CovarianceAccumulator(const CovarianceAccumulator &) = delete;
  CovarianceAccumulator &operator=(const CovarianceAccumulator &) = delete;

  // Adds one row of dims values. Throws Error 22000 for a value that is not finite.
  void add(const float *x);
  int dims() const { return dims_; }
  int64_t rows() const { return rows_; }

 private:
  struct Impl;
  void flush();
  int dims_;
  int64_t rows_ = 0;
  std::vector<double> pending_;  // up to kBatch rows, row-major
  std::unique_ptr<Impl> impl_;
  friend WhiteningFit fit_whitening(CovarianceAccumulator &, double, double, int,
                                    const std::function<void()> &);
};

// The projection described above from the accumulated rows. components: k (1..dims_in, or 0 for
// all). Throws Error 22023 for bad parameters or fewer than 2 rows. poll() is called between
// steps of the eigendecomposition (model/eigen.hpp) so that the caller can interrupt it by
// throwing.
WhiteningFit fit_whitening(
    CovarianceAccumulator &acc, double epsilon, double power, int components,
    const std::function<void()> &poll = [] {});

}  // namespace lookalike::model
