// The addon's exports. Everything else lives in one file per group of operations.
#include <napi.h>

#include "ops.h"

#ifdef MOEAD_WITH_TENSORRT
#include <NvInferVersion.h>
#endif

namespace moead {

namespace {

// What this build can do on this machine: 'cpu' always; 'cuda' when the CUDA kernels were
// compiled in and a device answers; 'tensorrt' when the engine runner was compiled in too.
Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array caps = Napi::Array::New(env);
  uint32_t n = 0;
  caps.Set(n++, "cpu");
#ifdef MOEAD_WITH_CUDA
  if (CudaDeviceCount() > 0) {
    caps.Set(n++, "cuda");
#ifdef MOEAD_WITH_TENSORRT
    caps.Set(n++, "tensorrt");
#endif
  }
#endif
  return caps;
}

// What was compiled in, independent of the devices present.
Napi::Object BuildInfo(Napi::Env env) {
  Napi::Object build = Napi::Object::New(env);
#ifdef MOEAD_WITH_CUDA
  build.Set("cuda", true);
#else
  build.Set("cuda", false);
#endif
#ifdef MOEAD_WITH_TENSORRT
  build.Set("tensorrt", std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + "." +
                            std::to_string(NV_TENSORRT_PATCH));
#else
  build.Set("tensorrt", false);
#endif
#ifdef MOEAD_ASAN
  build.Set("asan", true);
#else
  build.Set("asan", false);
#endif
  return build;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  exports.Set("build", BuildInfo(env));
  RegisterCpuOps(env, exports);
  RegisterServiceOps(env, exports);
  RegisterFloatEnvOps(env, exports);
#ifdef MOEAD_WITH_CUDA
  RegisterCudaOps(env, exports);
#endif
#ifdef MOEAD_WITH_TENSORRT
  RegisterTensorRt(env, exports);
#endif
  return exports;
}

}  // namespace moead

// The macro pastes its second argument into an identifier, so it must be unqualified.
using moead::Init;
NODE_API_MODULE(moead_native, Init)
