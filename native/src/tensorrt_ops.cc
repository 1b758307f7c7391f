// createEngine(options, onProgress?) → Promise<engine>; engine.run(input, batch) →
// Promise<{ output, runMs }>; engine.info(); engine.dispose(). The build (minutes on a
// Jetson) and every run happen on the libuv pool; progress lines reach JS through a
// thread-safe function.
#include <napi.h>

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "args.h"
#include "engine_runner.h"
#include "ops.h"
#include "task_worker.h"

namespace moead {

namespace {

std::string StringField(const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (!v.IsString() || v.As<Napi::String>().Utf8Value().empty()) {
    throw Napi::TypeError::New(o.Env(), std::string("Expected a non-empty string for options.") + key);
  }
  return v.As<Napi::String>().Utf8Value();
}

Napi::Array Shape(Napi::Env env, const std::vector<int64_t>& dims) {
  Napi::Array a = Napi::Array::New(env, dims.size());
  for (size_t i = 0; i < dims.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(dims[i])));
  return a;
}

// The JS face of one engine: methods close over a shared owner, so a run in flight keeps the
// engine alive even if dispose() is called meanwhile.
Napi::Object WrapEngine(Napi::Env env, std::shared_ptr<EngineRunner> runner, const std::string& model) {
  auto holder = std::make_shared<std::shared_ptr<EngineRunner>>(std::move(runner));
  Napi::Object engine = Napi::Object::New(env);
  engine.Set("run", Napi::Function::New(env, [holder, model](const Napi::CallbackInfo& info) -> Napi::Value {
    std::shared_ptr<EngineRunner> r = *holder;
    if (!r) throw Napi::Error::New(info.Env(), "the engine was disposed");
    const int max_batch = static_cast<int>(r->info().input_shape[0]);
    const int batch = static_cast<int>(UintArg(info[1], "batch", 1, static_cast<uint32_t>(max_batch)));
    const View<float> input = Float32Arg(info[0], "input", r->InputElements(batch));
    const View<float> out = OutputFloat32(info.Env(), Napi::Value(), "output", r->OutputElements(batch));
    auto ms = std::make_shared<double>(0);
    return TaskWorker::Start(
        info.Env(), {input.array, out.array},
        [r, src = input.data, dst = out.data, batch, ms, model] {
          const auto t0 = std::chrono::steady_clock::now();
          try {
            r->Run(src, batch, dst);
          } catch (const std::exception& error) {
            throw std::runtime_error(model + ": " + error.what());
          }
          *ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        },
        [ms](Napi::Env e, const std::vector<Napi::ObjectReference>& kept) {
          Napi::Object result = Napi::Object::New(e);
          result.Set("output", kept[1].Value());
          result.Set("runMs", Napi::Number::New(e, *ms));
          return result;
        });
  }, "run"));
  engine.Set("info", Napi::Function::New(env, [holder](const Napi::CallbackInfo& info) -> Napi::Value {
    if (!*holder) throw Napi::Error::New(info.Env(), "the engine was disposed");
    const EngineInfo& i = (*holder)->info();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("tensorrt", i.tensorrt);
    o.Set("computeCapability", i.compute);
    o.Set("engineFile", i.engine_file);
    o.Set("fromCache", i.from_cache);
    o.Set("inputShape", Shape(info.Env(), i.input_shape));
    o.Set("outputShape", Shape(info.Env(), i.output_shape));
    return o;
  }, "info"));
  engine.Set("dispose", Napi::Function::New(env, [holder](const Napi::CallbackInfo& info) {
    holder->reset();
    return info.Env().Undefined();
  }, "dispose"));
  return engine;
}

Napi::Value CreateEngineJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = ObjectArg(info[0], "options");
  EngineOptions options;
  options.onnx_path = StringField(o, "onnxPath");
  options.model_sha256 = StringField(o, "sha256");
  options.precision = StringField(o, "precision");
  if (options.precision != "int8" && options.precision != "fp16" && options.precision != "fp32") {
    throw Napi::TypeError::New(env, "Expected int8, fp16 or fp32 for options.precision");
  }
  options.cache_dir = StringField(o, "cacheDir");
  options.input_name = StringField(o, "inputName");
  options.output_name = StringField(o, "outputName");
  options.max_batch = static_cast<int>(UintArg(o.Get("maxBatch"), "options.maxBatch", 1, 64));
  options.dla_core = static_cast<int>(NumberArg(o.Get("dlaCore"), "options.dlaCore"));

  std::shared_ptr<Napi::ThreadSafeFunction> progress;
  if (info[1].IsFunction()) {
    progress = std::make_shared<Napi::ThreadSafeFunction>(
        Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "moead-trt-progress", 0, 1));
  }
  auto runner = std::make_shared<std::shared_ptr<EngineRunner>>();
  auto release = [progress] {
    if (progress) progress->Release();
  };
  return TaskWorker::Start(
      env, {},
      [options, progress, runner, release] {
        try {
          *runner = EngineRunner::Open(options, [progress](const std::string& line) {
            if (!progress) return;
            // The line is owned by the call once it is queued; the callback frees it even if
            // onProgress throws. A call that is not queued (the function is closing) frees it here.
            std::unique_ptr<std::string> text(new std::string(line));
            const napi_status status =
                progress->BlockingCall(text.get(), [](Napi::Env e, Napi::Function cb, std::string* s) {
                  std::unique_ptr<std::string> owned(s);
                  cb.Call({Napi::String::New(e, *owned)});
                });
            if (status == napi_ok) text.release();
          });
        } catch (const std::exception& error) {
          release();
          // TaskWorker rejects with the message alone: name the model it was about.
          throw std::runtime_error(options.onnx_path + ": " + error.what());
        } catch (...) {
          release();
          throw;
        }
        release();
      },
      [runner, model = options.onnx_path](Napi::Env e, const std::vector<Napi::ObjectReference>&) -> Napi::Value {
        return WrapEngine(e, *runner, model);
      });
}

}  // namespace

void RegisterTensorRt(Napi::Env env, Napi::Object exports) {
  exports.Set("createEngine", Napi::Function::New(env, CreateEngineJs, "createEngine"));
}

}  // namespace moead
