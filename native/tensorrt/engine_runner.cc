#include "engine_runner.h"

#include <NvInfer.h>
#include <NvOnnxParser.h>
#include <cuda_runtime.h>

#include <cstring>
#include <stdexcept>

#include "device_buffer.h"

namespace moead {

namespace {

// Collects TensorRT's errors so a failure can say what TensorRT said, not just "failed".
class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    if (severity > Severity::kWARNING) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!text_.empty()) text_ += "; ";
    text_ += msg;
  }
  std::string Take() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string t;
    t.swap(text_);
    return t.empty() ? "no message from TensorRT" : t;
  }

 private:
  std::mutex mutex_;
  std::string text_;
};

std::string TensorRtVersion() {
  const int32_t v = getInferLibVersion();  // the library loaded, which may differ from the headers
  // major * 10000 + minor * 100 + patch (TensorRT >= 10).
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}

std::string ComputeCapability() {
  int device = 0;
  cudaDeviceProp prop{};
  CudaThrow(cudaGetDevice(&device), "cudaGetDevice");
  CudaThrow(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return std::to_string(prop.major) + "." + std::to_string(prop.minor);
}

std::vector<int64_t> ToVector(const nvinfer1::Dims& d) { return std::vector<int64_t>(d.d, d.d + d.nbDims); }

int64_t Product(const std::vector<int64_t>& v, size_t from) {
  int64_t p = 1;
  for (size_t i = from; i < v.size(); ++i) p *= v[i];
  return p;
}

}  // namespace

struct EngineRunner::Impl {
  Logger logger;
  std::unique_ptr<nvinfer1::IRuntime> runtime;
  std::unique_ptr<nvinfer1::ICudaEngine> engine;
  std::unique_ptr<nvinfer1::IExecutionContext> context;
  Stream stream;
  DeviceBuffer<float> d_input, d_output;
  PinnedBuffer<float> h_input, h_output;
  std::string input_name, output_name;
  std::vector<int64_t> input_shape;  // [max_batch, C, H, W]
  std::vector<int64_t> output_shape; // per image

  std::vector<char> Build(const EngineOptions& o, const EngineKey& key, const Progress& progress) {
    std::unique_ptr<nvinfer1::IBuilder> builder(nvinfer1::createInferBuilder(logger));
    if (!builder) throw std::runtime_error("createInferBuilder: " + logger.Take());
    std::unique_ptr<nvinfer1::INetworkDefinition> network(builder->createNetworkV2(0U));
    std::unique_ptr<nvonnxparser::IParser> parser(nvonnxparser::createParser(*network, logger));
    progress("parsing " + o.onnx_path);
    if (!parser->parseFromFile(o.onnx_path.c_str(), static_cast<int>(nvinfer1::ILogger::Severity::kWARNING))) {
      std::string errors;
      for (int32_t i = 0; i < parser->getNbErrors(); ++i) errors += std::string(i ? "; " : "") + parser->getError(i)->desc();
      throw std::runtime_error("could not parse " + o.onnx_path + ": " + errors);
    }
    std::unique_ptr<nvinfer1::IBuilderConfig> config(builder->createBuilderConfig());
    config->setMemoryPoolLimit(nvinfer1::MemoryPoolType::kWORKSPACE, o.workspace_bytes);
#if NV_TENSORRT_MAJOR < 11
    // Q/DQ nodes carry the INT8 scales (explicit quantization): kINT8 lets TensorRT honour
    // them; kFP16 additionally lets the layers between them run in half precision.
    if (o.precision == "int8" || o.precision == "fp16") config->setFlag(nvinfer1::BuilderFlag::kINT8);
    if (o.precision == "fp16") config->setFlag(nvinfer1::BuilderFlag::kFP16);
#else
    // TensorRT 11 builds every network strongly typed: precision is what the ONNX says.
    if (o.precision == "fp16") {
      throw std::runtime_error("TensorRT " + key.tensorrt + " builds strongly typed networks: fp16 needs an FP16 ONNX model");
    }
#endif
    if (o.dla_core >= 0) {
      if (builder->getNbDLACores() <= o.dla_core) {
        throw std::runtime_error("DLA core " + std::to_string(o.dla_core) + " asked for, this device has " +
                                 std::to_string(builder->getNbDLACores()));
      }
      config->setDefaultDeviceType(nvinfer1::DeviceType::kDLA);
      config->setDLACore(o.dla_core);
      config->setFlag(nvinfer1::BuilderFlag::kGPU_FALLBACK);  // layers the DLA lacks run on the GPU
    }
    // Dynamic batch: one profile from 1 to max_batch, tuned for batch 1 (one camera frame).
    nvinfer1::ITensor* input = network->getInput(0);
    nvinfer1::Dims dims = input->getDimensions();
    if (dims.nbDims != 4) throw std::runtime_error("expected a 4-d NCHW input, the model's has " + std::to_string(dims.nbDims));
    nvinfer1::IOptimizationProfile* profile = builder->createOptimizationProfile();
    nvinfer1::Dims lo = dims, hi = dims;
    lo.d[0] = 1;
    hi.d[0] = o.max_batch;
    profile->setDimensions(input->getName(), nvinfer1::OptProfileSelector::kMIN, lo);
    profile->setDimensions(input->getName(), nvinfer1::OptProfileSelector::kOPT, lo);
    profile->setDimensions(input->getName(), nvinfer1::OptProfileSelector::kMAX, hi);
    config->addOptimizationProfile(profile);

    const std::string timing_file = TimingCacheFile(o.cache_dir, key);
    std::vector<char> timing;
    ReadFileBytes(timing_file, &timing);
    std::unique_ptr<nvinfer1::ITimingCache> cache(config->createTimingCache(timing.data(), timing.size()));
    if (!cache || !config->setTimingCache(*cache, false)) {
      // A cache from another build of TensorRT is refused: start an empty one instead.
      cache.reset(config->createTimingCache(nullptr, 0));
      config->setTimingCache(*cache, false);
    }
    progress(std::string("building the ") + o.precision + " engine (minutes on a Jetson; cached afterwards)" +
             (timing.empty() ? "" : ", with the timing cache"));
    std::unique_ptr<nvinfer1::IHostMemory> plan(builder->buildSerializedNetwork(*network, *config));
    if (!plan) throw std::runtime_error("engine build failed: " + logger.Take());
    std::unique_ptr<nvinfer1::IHostMemory> timing_out(config->getTimingCache()->serialize());
    if (timing_out) WriteFileAtomic(timing_file, timing_out->data(), timing_out->size());
    const char* bytes = static_cast<const char*>(plan->data());
    return std::vector<char>(bytes, bytes + plan->size());
  }
};

EngineRunner::EngineRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EngineRunner::~EngineRunner() = default;

std::unique_ptr<EngineRunner> EngineRunner::Open(const EngineOptions& o, const Progress& progress) {
  if (o.max_batch < 1) throw std::runtime_error("maxBatch must be at least 1");
  auto impl = std::make_unique<Impl>();
  EngineKey key{o.model_sha256, TensorRtVersion(), ComputeCapability(), o.precision, o.dla_core, o.max_batch};
  MakeDirs(o.cache_dir);
  const std::string engine_file = EngineFile(o.cache_dir, key);

  impl->runtime.reset(nvinfer1::createInferRuntime(impl->logger));
  if (!impl->runtime) throw std::runtime_error("createInferRuntime: " + impl->logger.Take());
  if (o.dla_core >= 0) impl->runtime->setDLACore(o.dla_core);

  std::vector<char> blob;
  bool from_cache = ReadFileBytes(engine_file, &blob);
  if (from_cache) {
    progress("loading cached engine " + engine_file);
    impl->engine.reset(impl->runtime->deserializeCudaEngine(blob.data(), blob.size()));
    if (!impl->engine) {
      progress("cached engine unusable (" + impl->logger.Take() + "), rebuilding");
      from_cache = false;
    }
  }
  if (!from_cache) {
    blob = impl->Build(o, key, progress);
    WriteFileAtomic(engine_file, blob.data(), blob.size());
    progress("engine saved to " + engine_file);
    impl->engine.reset(impl->runtime->deserializeCudaEngine(blob.data(), blob.size()));
    if (!impl->engine) throw std::runtime_error("could not load the engine just built: " + impl->logger.Take());
  }
  impl->context.reset(impl->engine->createExecutionContext());
  if (!impl->context) throw std::runtime_error("createExecutionContext: " + impl->logger.Take());

  // The bundle manifest names the tensors; check the engine has them as input and output.
  const char* in = o.input_name.c_str();
  const char* out = o.output_name.c_str();
  if (impl->engine->getTensorIOMode(in) != nvinfer1::TensorIOMode::kINPUT) {
    throw std::runtime_error("the model has no input tensor named \"" + o.input_name + "\"");
  }
  if (impl->engine->getTensorIOMode(out) != nvinfer1::TensorIOMode::kOUTPUT) {
    throw std::runtime_error("the model has no output tensor named \"" + o.output_name + "\"");
  }
  impl->input_name = o.input_name;
  impl->output_name = o.output_name;
  impl->input_shape = ToVector(impl->engine->getProfileShape(in, 0, nvinfer1::OptProfileSelector::kMAX));
  // The output's shape is known once the input's is set: ask with the largest batch.
  nvinfer1::Dims max_in = impl->engine->getProfileShape(in, 0, nvinfer1::OptProfileSelector::kMAX);
  if (!impl->context->setInputShape(in, max_in)) throw std::runtime_error("setInputShape: " + impl->logger.Take());
  const std::vector<int64_t> max_out = ToVector(impl->context->getTensorShape(out));
  impl->output_shape.assign(max_out.begin() + 1, max_out.end());
  for (int64_t d : impl->output_shape) {
    if (d <= 0) throw std::runtime_error("the output \"" + o.output_name + "\" has a dynamic shape beyond its batch");
  }

  auto runner = std::unique_ptr<EngineRunner>(new EngineRunner(std::move(impl)));
  Impl& im = *runner->impl_;
  const size_t in_n = runner->InputElements(o.max_batch), out_n = runner->OutputElements(o.max_batch);
  im.d_input.Resize(in_n);
  im.d_output.Resize(out_n);
  im.h_input.Resize(in_n);
  im.h_output.Resize(out_n);
  runner->info_ = EngineInfo{key.tensorrt, key.compute, engine_file, from_cache, im.input_shape, im.output_shape};
  return runner;
}

size_t EngineRunner::InputElements(int batch) const { return static_cast<size_t>(batch) * Product(impl_->input_shape, 1); }
size_t EngineRunner::OutputElements(int batch) const { return static_cast<size_t>(batch) * Product(impl_->output_shape, 0); }

void EngineRunner::Run(const float* input, int batch, float* output) {
  std::lock_guard<std::mutex> lock(run_mutex_);
  Impl& im = *impl_;
  if (batch < 1 || batch > im.input_shape[0]) throw std::runtime_error("batch must be 1.." + std::to_string(im.input_shape[0]));
  const size_t in_n = InputElements(batch), out_n = OutputElements(batch);
  nvinfer1::Dims shape{};
  shape.nbDims = static_cast<int32_t>(im.input_shape.size());
  for (int i = 0; i < shape.nbDims; ++i) shape.d[i] = im.input_shape[i];
  shape.d[0] = batch;
  if (!im.context->setInputShape(im.input_name.c_str(), shape)) throw std::runtime_error("setInputShape: " + im.logger.Take());
  im.context->setTensorAddress(im.input_name.c_str(), im.d_input.get());
  im.context->setTensorAddress(im.output_name.c_str(), im.d_output.get());
  // Staging through pinned memory lets both copies run asynchronously on the stream.
  std::memcpy(im.h_input.get(), input, in_n * sizeof(float));
  CudaThrow(cudaMemcpyAsync(im.d_input.get(), im.h_input.get(), in_n * sizeof(float), cudaMemcpyHostToDevice, im.stream.get()), "upload");
  if (!im.context->enqueueV3(im.stream.get())) throw std::runtime_error("enqueueV3: " + im.logger.Take());
  CudaThrow(cudaMemcpyAsync(im.h_output.get(), im.d_output.get(), out_n * sizeof(float), cudaMemcpyDeviceToHost, im.stream.get()), "download");
  im.stream.Sync();
  std::memcpy(output, im.h_output.get(), out_n * sizeof(float));
}

}  // namespace moead
