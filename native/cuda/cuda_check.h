// Status-returning CUDA checks: a failed call returns its error to the caller (never asserts,
// so it behaves the same under NDEBUG), and the host API turns it into a JS error.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#define MOEAD_CUDA_RETURN(expr)                 \
  do {                                          \
    const cudaError_t moead_status_ = (expr);   \
    if (moead_status_ != cudaSuccess) return moead_status_; \
  } while (0)

namespace moead {

// For host code that reports by exception (the addon's workers): names the call and the error.
inline void CudaThrow(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

inline unsigned DivUp(unsigned a, unsigned b) { return (a + b - 1) / b; }

}  // namespace moead
