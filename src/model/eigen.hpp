// Eigendecomposition of a symmetric matrix that a caller can interrupt (pure C++, no LibTorch).
//
// lookalike.fit_projection() needs every eigenvalue and eigenvector of a d x d covariance. A
// LAPACK call (torch::linalg::eigh) cannot be interrupted: at 2,048 dimensions it ran 51 s
// during which the backend ignored pg_cancel_backend. This solver does the same work in steps of
// at most O(d^2) operations and calls `poll` between them, so the SQL side answers a cancel
// request (poll runs CHECK_FOR_INTERRUPTS and throws) within milliseconds.
//
// Method (Golub & Van Loan, "Matrix Computations", 8.3): Householder reduction to a tridiagonal
// matrix T = Q^T A Q, accumulation of Q, then the implicit QL iteration with Wilkinson-type
// shifts on T, whose rotations are applied to the rows of Q^T. Every inner loop runs over a
// contiguous row, so the compiler vectorises it.
#pragma once

#include <functional>
#include <vector>

namespace lookalike::model {

// a: the n x n symmetric matrix, row-major (both triangles). On return, values holds the n
// eigenvalues, largest first, and a holds the matching unit eigenvectors as rows. poll() is
// called between steps (about 3n times in all); an exception it throws leaves through this
// function (a and values are then unspecified). Throws Error XX000 if the QL iteration does not
// converge (30 n iterations), which for a finite symmetric input does not happen in practice.
void symmetric_eigen(int n, std::vector<double> &a, std::vector<double> &values,
                     const std::function<void()> &poll);

}  // namespace lookalike::model
