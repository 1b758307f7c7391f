// A TensorRT engine for one bundle model: built from the ONNX file (explicit INT8 from its
// Q/DQ nodes, or FP16/FP32), cached on disk by EngineKey, run on its own CUDA stream with
// pinned host staging buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine_cache.h"

namespace moead {

struct EngineOptions {
  std::string onnx_path;
  std::string model_sha256;
  std::string precision = "int8";  // int8 | fp16 | fp32
  std::string cache_dir;
  std::string input_name;
  std::string output_name;
  int max_batch = 1;
  int dla_core = -1;
  size_t workspace_bytes = size_t{1} << 30;  // Orin Nano shares 8 GB with the CPU
};

struct EngineInfo {
  std::string tensorrt;
  std::string compute;
  std::string engine_file;
  bool from_cache = false;
  std::vector<int64_t> input_shape;   // with batch = max_batch
  std::vector<int64_t> output_shape;  // per image (batch dimension dropped)
};

class EngineRunner {
 public:
  using Progress = std::function<void(const std::string&)>;

  // Loads the cached engine for these options, or builds and caches it. Throws
  // std::runtime_error naming the step that failed and TensorRT's own error text.
  static std::unique_ptr<EngineRunner> Open(const EngineOptions& options, const Progress& progress);
  ~EngineRunner();

  // input: batch × C × H × W floats; output: batch × (output_shape) floats. Thread-safe
  // (one run at a time per engine).
  void Run(const float* input, int batch, float* output);
  const EngineInfo& info() const { return info_; }
  size_t InputElements(int batch) const;
  size_t OutputElements(int batch) const;

 private:
  struct Impl;
  explicit EngineRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  EngineInfo info_;
  std::mutex run_mutex_;
};

}  // namespace moead
