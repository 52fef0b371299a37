#include "model/whitening.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/errors.hpp"
#include "model/eigen.hpp"

namespace lookalike::model {
namespace {
// Rows per Gram-matrix update: up to 256, fewer for large dimensions so that one update (rows x
// d^2 multiply-adds) stays near 2^28 and the caller's cancel check between rows is never far.
size_t batch_rows(int dims) {
  const size_t d2 = size_t(dims) * size_t(dims);
  return std::clamp<size_t>((size_t(1) << 28) / d2, 1, 256);
}
}  // namespace

struct CovarianceAccumulator::Impl {
  torch::Tensor gram;  // dims x dims, float64: sum x x^T
  torch::Tensor sum;   // dims, float64
};

CovarianceAccumulator::CovarianceAccumulator(int dims) : dims_(dims), impl_(new Impl) {
  if (dims < 1) throw Error(sqlstate::kInvalidParameterValue, "dimension must be positive");
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  impl_->gram = torch::zeros({dims, dims}, opts);
  impl_->sum = torch::zeros({dims}, opts);
  pending_.reserve(batch_rows(dims) * size_t(dims));
}

CovarianceAccumulator::~CovarianceAccumulator() = default;

void CovarianceAccumulator::add(const float *x) {
  for (int i = 0; i < dims_; ++i)
    if (!std::isfinite(x[i]))
      throw Error(sqlstate::kDataException, "a vector has a component that is not finite");
  pending_.insert(pending_.end(), x, x + dims_);
  ++rows_;
  if (pending_.size() >= batch_rows(dims_) * size_t(dims_)) flush();
}

void CovarianceAccumulator::flush() {
  if (pending_.empty()) return;
  const int64_t n = int64_t(pending_.size() / size_t(dims_));
  torch::NoGradGuard no_grad;
  torch::Tensor b = torch::from_blob(pending_.data(), {n, dims_}, torch::kFloat64);
  impl_->gram.addmm_(b.t(), b);
  impl_->sum.add_(b.sum(0));
  pending_.clear();
}

WhiteningFit fit_whitening(CovarianceAccumulator &acc, double epsilon, double power, int components,
                           const std::function<void()> &poll) {
  const int d = acc.dims();
  if (!(std::isfinite(power) && power >= 0.0 && power <= 1.0))
    throw Error(sqlstate::kInvalidParameterValue, "power must be between 0 and 1");
  if (!(std::isfinite(epsilon) && epsilon >= 0.0))
    throw Error(sqlstate::kInvalidParameterValue, "epsilon must be zero or positive");
  if (epsilon == 0.0 && power > 0.0)
    throw Error(sqlstate::kInvalidParameterValue, "epsilon must be positive when power is",
                "Whitening divides by the eigenvalues; epsilon * their mean keeps the smallest "
                "ones from dividing by (almost) zero.");
  if (components < 0 || components > d)
    throw Error(sqlstate::kInvalidParameterValue,
                "components must be between 1 and " + std::to_string(d) + " (or null for all)");
  if (acc.rows() < 2)
    throw Error(
        sqlstate::kInvalidParameterValue,
        "a projection needs at least 2 rows, the query returned " + std::to_string(acc.rows()));
  acc.flush();
  torch::NoGradGuard no_grad;
  const double n = double(acc.rows());
  torch::Tensor mean = acc.impl_->sum / n;
  torch::Tensor cov = acc.impl_->gram / n - torch::outer(mean, mean);
  cov = ((cov + cov.t()) * 0.5).contiguous();  // exactly symmetric
  // Our own solver, not torch::linalg::eigh: LAPACK cannot be interrupted (model/eigen.hpp).
  std::vector<double> vectors(cov.data_ptr<double>(),
                              cov.data_ptr<double>() + size_t(d) * size_t(d));
  cov = torch::Tensor();  // release the d x d tensor before the solver allocates its own
  std::vector<double> values;
  symmetric_eigen(d, vectors, values, poll);  // rows = eigenvectors, largest eigenvalue first

  const int k = components == 0 ? d : components;
  WhiteningFit fit;
  fit.dims_in = d;
  fit.dims_out = k;
  fit.eigenvalues = std::move(values);
  double mean_eval = 0;
  for (double l : fit.eigenvalues) mean_eval += std::max(l, 0.0);
  mean_eval /= d;
  if (!(mean_eval > 0.0))
    throw Error(sqlstate::kInvalidParameterValue, "the rows do not vary",
                "All " + std::to_string(acc.rows()) +
                    " vectors are equal: there are no directions to fit.");
  const double *mp = mean.data_ptr<double>();
  fit.mean.assign(mp, mp + d);
  fit.matrix.resize(size_t(k) * size_t(d));
  const double *v = vectors.data();
  for (int i = 0; i < k; ++i) {
    const double *row = v + size_t(i) * size_t(d);
    // Deterministic sign: the largest component (by magnitude) positive.
    int arg = 0;
    for (int j = 1; j < d; ++j)
      if (std::abs(row[j]) > std::abs(row[arg])) arg = j;
    const double sign = row[arg] < 0 ? -1.0 : 1.0;
    const double base = std::max(fit.eigenvalues[size_t(i)], 0.0) + epsilon * mean_eval;
    const double s = power == 0.0 ? 1.0 : (base > 0 ? std::pow(base, -power) : 0.0);
    for (int j = 0; j < d; ++j)
      fit.matrix[size_t(i) * size_t(d) + size_t(j)] = float(sign * s * row[j]);
  }
  return fit;
}

}  // namespace lookalike::model
