// Where a built TensorRT engine and the builder's timing cache are kept. An engine only runs
// on the TensorRT version, GPU model and build flags it was built with, so all of them are in
// its file name: a change of any one builds a new engine instead of loading a wrong one.
#pragma once

#include <string>
#include <vector>

namespace moead {

struct EngineKey {
  std::string model_sha256;   // of the ONNX bytes, computed by the caller in-process
  std::string tensorrt;       // e.g. "10.3.0"
  std::string compute;        // GPU compute capability, e.g. "8.7"
  std::string precision;      // int8 | fp16 | fp32
  int dla_core = -1;          // -1: GPU only
  int max_batch = 1;
};

// <dir>/<sha256[0..16]>-trt<ver>-sm<cc>-<precision>[-dla<n>]-b<batch>.engine
std::string EngineFile(const std::string& dir, const EngineKey& key);
// <dir>/timing-trt<ver>-sm<cc>.cache: tactic timings are per TensorRT version and GPU.
std::string TimingCacheFile(const std::string& dir, const EngineKey& key);

// Whole-file read; false when the file does not exist or cannot be read.
bool ReadFileBytes(const std::string& path, std::vector<char>* bytes);
// Writes to a temporary file beside `path` and renames it over `path`, so a crash or a
// second process never leaves a half-written engine behind. Throws on failure.
void WriteFileAtomic(const std::string& path, const void* data, size_t size);
// mkdir -p; throws on failure.
void MakeDirs(const std::string& dir);

}  // namespace moead
