// Registration of the addon's functions, one group per backend.
#pragma once

#include <napi.h>

namespace moead {

// preprocess, preprocessPng, postprocess, heatmap, overlay on the CPU (always built).
void RegisterCpuOps(Napi::Env env, Napi::Object exports);
// sdNotify: the service manager's notification socket (always built).
void RegisterServiceOps(Napi::Env env, Napi::Object exports);
// flushDenormals: subnormal floats as zero on the calling thread (always built).
void RegisterFloatEnvOps(Napi::Env env, Napi::Object exports);
#ifdef MOEAD_WITH_CUDA
// cudaPreprocess, cudaPostprocess, cudaHeatmap, cudaDeviceCount.
void RegisterCudaOps(Napi::Env env, Napi::Object exports);
// Number of usable CUDA devices (0 when the driver or a device is missing).
int CudaDeviceCount();
#endif
#ifdef MOEAD_WITH_TENSORRT
// TensorRTEngine class.
void RegisterTensorRt(Napi::Env env, Napi::Object exports);
#endif

}  // namespace moead
