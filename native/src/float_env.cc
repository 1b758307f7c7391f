// flushDenormals(): subnormal floats become zero on the calling thread (x86 FTZ + DAZ in
// MXCSR, AArch64 FZ in FPCR). Returns true when the bits are set, false on a CPU without them.
//
// Why: the model's neighbour-masked attention adds -1e4 to the masked scores, and MLAS's
// softmax clamps exp() at ln(FLT_MIN) - 1, so every masked entry comes out as a subnormal
// (~4e-39). On Intel cores each subnormal operand takes a microcode assist: one masked
// 4x196x196 softmax took 668 us instead of 55 us (a Xeon with AVX-512, one thread). The
// scores are bit-identical with the flag set (the subnormals are 40 orders below the sums
// they join). onnxruntime's session.set_denormal_as_zero sets the flag on its intra-op pool,
// but on the calling thread only for the first session created in the process (a
// std::call_once), so a second model opened on a new worker thread ran without it.
//
// The state is per thread and sticky: call it on the thread that runs the session.
#include <napi.h>

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

#include "ops.h"

namespace moead {

namespace {

bool SetFlushToZero() {
#if defined(__x86_64__) || defined(__i386__)
  _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
  _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
  return _MM_GET_FLUSH_ZERO_MODE() == _MM_FLUSH_ZERO_ON && _MM_GET_DENORMALS_ZERO_MODE() == _MM_DENORMALS_ZERO_ON;
#elif defined(__aarch64__)
  constexpr uint64_t kFlushToZero = uint64_t{1} << 24;  // FPCR.FZ
  uint64_t fpcr;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
  __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr | kFlushToZero));
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
  return (fpcr & kFlushToZero) != 0;
#else
  return false;
#endif
}

Napi::Value FlushDenormalsJs(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), SetFlushToZero());
}

}  // namespace

void RegisterFloatEnvOps(Napi::Env env, Napi::Object exports) {
  exports.Set("flushDenormals", Napi::Function::New(env, FlushDenormalsJs, "flushDenormals"));
}

}  // namespace moead
