#include "engine_runner.h"

#include <NvInfer.h>
#include <NvOnnxParser.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
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
#if NV_TENSORRT_MAJOR >= 10
  constexpr int32_t kMajor = 10000;  // major * 10000 + minor * 100 + patch
#else
  constexpr int32_t kMajor = 1000;  // TensorRT 8 (JetPack 5): major * 1000 + minor * 100 + patch
#endif
  return std::to_string(v / kMajor) + "." + std::to_string((v % kMajor) / 100) + "." + std::to_string(v % 100);
}

std::string ComputeCapability() {
  int device = 0;
  cudaDeviceProp prop{};
  CudaThrow(cudaGetDevice(&device), "cudaGetDevice");
  CudaThrow(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return std::to_string(prop.major) + "." + std::to_string(prop.minor);
}

std::vector<int64_t> ToVector(const nvinfer1::Dims& d) { return std::vector<int64_t>(d.d, d.d + d.nbDims); }

std::string DimsString(const nvinfer1::Dims& d) {
  std::string s = "[";
  for (int32_t i = 0; i < d.nbDims; ++i) s += (i ? "x" : "") + (d.d[i] < 0 ? std::string("?") : std::to_string(d.d[i]));
  return s + "]";
}

std::string DataTypeName(nvinfer1::DataType t) {
  switch (t) {
    case nvinfer1::DataType::kFLOAT: return "float32";
    case nvinfer1::DataType::kHALF: return "float16";
    case nvinfer1::DataType::kINT8: return "int8";
    case nvinfer1::DataType::kINT32: return "int32";
    case nvinfer1::DataType::kBOOL: return "bool";
#if NV_TENSORRT_MAJOR >= 10
    case nvinfer1::DataType::kUINT8: return "uint8";
    case nvinfer1::DataType::kFP8: return "fp8";
    case nvinfer1::DataType::kBF16: return "bfloat16";
    case nvinfer1::DataType::kINT64: return "int64";
#endif
    default: break;  // types newer than these headers' names for them
  }
  return "DataType " + std::to_string(static_cast<int>(t));
}

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
  int64_t min_batch = 1;             // the engine's smallest batch: more than 1 when the ONNX fixes it

  std::vector<char> Build(const EngineOptions& o, const EngineKey& key, const Progress& progress) {
    std::unique_ptr<nvinfer1::IBuilder> builder(nvinfer1::createInferBuilder(logger));
    if (!builder) throw std::runtime_error("TensorRT could not create a builder (createInferBuilder): " + logger.Take());
#if NV_TENSORRT_MAJOR < 10
    // TensorRT 8 defaults to an implicit batch dimension, which the ONNX parser refuses.
    const uint32_t network_flags = 1U << static_cast<uint32_t>(nvinfer1::NetworkDefinitionCreationFlag::kEXPLICIT_BATCH);
#else
    const uint32_t network_flags = 0U;  // explicit batch is the only mode from TensorRT 10 on
#endif
    std::unique_ptr<nvinfer1::INetworkDefinition> network(builder->createNetworkV2(network_flags));
    if (!network) throw std::runtime_error("TensorRT could not create a network (createNetworkV2): " + logger.Take());
    std::unique_ptr<nvonnxparser::IParser> parser(nvonnxparser::createParser(*network, logger));
    if (!parser) throw std::runtime_error("TensorRT could not create an ONNX parser (createParser): " + logger.Take());
    progress("parsing " + o.onnx_path);
    if (!parser->parseFromFile(o.onnx_path.c_str(), static_cast<int>(nvinfer1::ILogger::Severity::kWARNING))) {
      std::string errors;
      for (int32_t i = 0; i < parser->getNbErrors(); ++i) {
        const nvonnxparser::IParserError* error = parser->getError(i);
        errors += std::string(i ? "; " : "") + (error ? error->desc() : "(no description)");
      }
      throw std::runtime_error("TensorRT's ONNX parser refused the model: " + (errors.empty() ? logger.Take() : errors));
    }
    std::unique_ptr<nvinfer1::IBuilderConfig> config(builder->createBuilderConfig());
    if (!config) throw std::runtime_error("TensorRT could not create a builder config (createBuilderConfig): " + logger.Take());
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

    // The input the bundle manifest names, not whichever the exporter listed first.
    nvinfer1::ITensor* input = nullptr;
    std::string inputs;
    for (int32_t i = 0; i < network->getNbInputs(); ++i) {
      nvinfer1::ITensor* t = network->getInput(i);
      if (!t) continue;
      inputs += std::string(inputs.empty() ? "\"" : ", \"") + t->getName() + "\"";
      if (o.input_name == t->getName()) input = t;
    }
    if (!input) {
      throw std::runtime_error("the network has no input named \"" + o.input_name + "\"; its inputs are " +
                               (inputs.empty() ? std::string("none") : inputs));
    }
    const nvinfer1::Dims dims = input->getDimensions();
    if (dims.nbDims != 4) {
      throw std::runtime_error("expected a 4-d NCHW input \"" + o.input_name + "\", it has " + std::to_string(dims.nbDims) +
                               " dimensions");
    }
    for (int32_t i = 1; i < dims.nbDims; ++i) {
      if (dims.d[i] <= 0) {
        throw std::runtime_error("the input \"" + o.input_name + "\" has a dynamic " + DimsString(dims) +
                                 " shape: only its batch dimension may be dynamic");
      }
    }
    if (dims.d[0] > 0) {
      // A batch fixed in the ONNX: the engine runs exactly that batch, so no profile; a run
      // with fewer images is padded to it (Run).
      if (o.max_batch > dims.d[0]) {
        throw std::runtime_error("the input \"" + o.input_name + "\" has a fixed batch of " + std::to_string(dims.d[0]) + " (" +
                                 DimsString(dims) + "), maxBatch " + std::to_string(o.max_batch) +
                                 " is larger: export the model with a dynamic batch dimension or lower maxBatch");
      }
      if (o.max_batch < dims.d[0]) {
        progress("the input has a fixed batch of " + std::to_string(dims.d[0]) + ": runs of fewer images are padded to it");
      }
    } else {
      // Dynamic batch: one profile from 1 to max_batch, tuned for batch 1 (one camera frame).
      nvinfer1::IOptimizationProfile* profile = builder->createOptimizationProfile();
      if (!profile) throw std::runtime_error("TensorRT could not create an optimization profile: " + logger.Take());
      nvinfer1::Dims lo = dims, hi = dims;
      lo.d[0] = 1;
      hi.d[0] = o.max_batch;
      if (!profile->setDimensions(input->getName(), nvinfer1::OptProfileSelector::kMIN, lo) ||
          !profile->setDimensions(input->getName(), nvinfer1::OptProfileSelector::kOPT, lo) ||
          !profile->setDimensions(input->getName(), nvinfer1::OptProfileSelector::kMAX, hi)) {
        throw std::runtime_error("TensorRT refused the optimization profile " + DimsString(lo) + ".." + DimsString(hi) +
                                 " for \"" + o.input_name + "\": " + logger.Take());
      }
      if (config->addOptimizationProfile(profile) < 0) {
        throw std::runtime_error("TensorRT refused the optimization profile for \"" + o.input_name + "\": " + logger.Take());
      }
    }

    const std::string timing_file = TimingCacheFile(o.cache_dir, key);
    std::vector<char> timing;
    ReadFileBytes(timing_file, &timing);
    std::unique_ptr<nvinfer1::ITimingCache> cache;
    if (!timing.empty()) {
      cache.reset(config->createTimingCache(timing.data(), timing.size()));
      if (!cache || !config->setTimingCache(*cache, false)) {
        // A cache from another build of TensorRT is refused: start an empty one instead.
        progress("timing cache " + timing_file + " refused (" + logger.Take() + "), starting an empty one");
        cache.reset();
        timing.clear();
      }
    }
    if (!cache) {
      cache.reset(config->createTimingCache(nullptr, 0));
      if (!cache) throw std::runtime_error("TensorRT could not create an empty timing cache: " + logger.Take());
      if (!config->setTimingCache(*cache, false)) {
        throw std::runtime_error("TensorRT refused an empty timing cache (setTimingCache): " + logger.Take());
      }
    }
    progress(std::string("building the ") + o.precision + " engine (minutes on a Jetson; cached afterwards)" +
             (timing.empty() ? "" : ", with the timing cache"));
    std::unique_ptr<nvinfer1::IHostMemory> plan(builder->buildSerializedNetwork(*network, *config));
    if (!plan) throw std::runtime_error("TensorRT could not build the engine (buildSerializedNetwork): " + logger.Take());
    if (!plan->data() || plan->size() == 0) {
      throw std::runtime_error("TensorRT built an empty serialized engine: " + logger.Take());
    }
    // Saving the timings only speeds up the next build: a failure here is reported, not fatal.
    const nvinfer1::ITimingCache* used = config->getTimingCache();
    std::unique_ptr<nvinfer1::IHostMemory> timing_out(used ? used->serialize() : nullptr);
    if (timing_out && timing_out->data() && timing_out->size() > 0) {
      WriteFileAtomic(timing_file, timing_out->data(), timing_out->size());
    } else {
      progress("timing cache not saved: TensorRT returned " + std::string(used ? "no serialized cache" : "no timing cache") +
               " (" + logger.Take() + ")");
    }
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
  // Run copies float32 in and out: a model with, say, float16 I/O would read and write
  // garbage, so it is refused here, before any run.
  for (const std::string& name : {o.input_name, o.output_name}) {
    const nvinfer1::DataType type = impl->engine->getTensorDataType(name.c_str());
    if (type != nvinfer1::DataType::kFLOAT) {
      throw std::runtime_error("the tensor \"" + name + "\" is " + DataTypeName(type) +
                               ", the engine runner passes float32 only: export the model with float32 inputs and outputs");
    }
  }
  impl->input_name = o.input_name;
  impl->output_name = o.output_name;
  // A batch fixed in the ONNX shows in the engine's tensor shape; a dynamic one (-1) is
  // bounded by the optimization profile.
  const nvinfer1::Dims in_dims = impl->engine->getTensorShape(in);
  const bool fixed_batch = in_dims.nbDims == 4 && in_dims.d[0] > 0;
  const nvinfer1::Dims min_in = fixed_batch ? in_dims : impl->engine->getProfileShape(in, 0, nvinfer1::OptProfileSelector::kMIN);
  const nvinfer1::Dims max_in = fixed_batch ? in_dims : impl->engine->getProfileShape(in, 0, nvinfer1::OptProfileSelector::kMAX);
  if (max_in.nbDims != 4 || min_in.nbDims != 4 || min_in.d[0] < 1) {
    throw std::runtime_error("the engine's input \"" + o.input_name + "\" has no usable NCHW shape (" + DimsString(in_dims) + ")");
  }
  for (int32_t i = 1; i < 4; ++i) {
    if (max_in.d[i] <= 0 || max_in.d[i] != min_in.d[i]) {
      throw std::runtime_error("the input \"" + o.input_name + "\" is dynamic beyond its batch (" + DimsString(min_in) + ".." +
                               DimsString(max_in) + ")");
    }
  }
  if (max_in.d[0] < o.max_batch) {
    throw std::runtime_error("the engine's input \"" + o.input_name + "\" takes at most " + std::to_string(max_in.d[0]) +
                             " images, maxBatch is " + std::to_string(o.max_batch));
  }
  impl->min_batch = min_in.d[0];
  impl->input_shape = ToVector(max_in);
  impl->input_shape[0] = o.max_batch;
  // The output's shape is known once the input's is set: ask with the largest batch.
  if (!impl->context->setInputShape(in, max_in)) throw std::runtime_error("setInputShape: " + impl->logger.Take());
  const std::vector<int64_t> max_out = ToVector(impl->context->getTensorShape(out));
  if (max_out.size() < 2 || max_out[0] != max_in.d[0]) {
    throw std::runtime_error("the output \"" + o.output_name + "\" has shape " +
                             DimsString(impl->context->getTensorShape(out)) + " for an input batch of " +
                             std::to_string(max_in.d[0]) + ": expected the batch as its first dimension");
  }
  impl->output_shape.assign(max_out.begin() + 1, max_out.end());
  for (int64_t d : impl->output_shape) {
    if (d <= 0) throw std::runtime_error("the output \"" + o.output_name + "\" has a dynamic shape beyond its batch");
  }

  auto runner = std::unique_ptr<EngineRunner>(new EngineRunner(std::move(impl)));
  Impl& im = *runner->impl_;
  // Buffers hold the batch the engine runs, which a fixed ONNX batch may make larger than maxBatch.
  const int buffer_batch = static_cast<int>(std::max<int64_t>(o.max_batch, im.min_batch));
  const size_t in_n = runner->InputElements(buffer_batch), out_n = runner->OutputElements(buffer_batch);
  im.d_input.Resize(in_n);
  im.d_output.Resize(out_n);
  im.h_input.Resize(in_n);
  im.h_output.Resize(out_n);
  // Padding slots of a fixed-batch engine are never uploaded to: start them at zero.
  CudaThrow(cudaMemset(im.d_input.get(), 0, in_n * sizeof(float)), "cudaMemset");
  runner->info_ = EngineInfo{key.tensorrt, key.compute, engine_file, from_cache, im.input_shape, im.output_shape};
  return runner;
}

size_t EngineRunner::InputElements(int batch) const { return static_cast<size_t>(batch) * Product(impl_->input_shape, 1); }
size_t EngineRunner::OutputElements(int batch) const { return static_cast<size_t>(batch) * Product(impl_->output_shape, 0); }

void EngineRunner::Run(const float* input, int batch, float* output) {
  std::lock_guard<std::mutex> lock(run_mutex_);
  Impl& im = *impl_;
  if (batch < 1 || batch > im.input_shape[0]) throw std::runtime_error("batch must be 1.." + std::to_string(im.input_shape[0]));
  // Open refused any I/O type but float32, so the float buffers below match the engine's.
  const size_t in_n = InputElements(batch), out_n = OutputElements(batch);
  nvinfer1::Dims shape{};
  shape.nbDims = static_cast<int32_t>(im.input_shape.size());
  for (int i = 0; i < shape.nbDims; ++i) shape.d[i] = im.input_shape[i];
  // A fixed-batch engine always runs its whole batch: the first `batch` slots hold this run's
  // images, and only their outputs are read back.
  shape.d[0] = std::max<int64_t>(batch, im.min_batch);
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
