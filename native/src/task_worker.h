// One AsyncWorker for every native call: the JS-facing part validates its arguments and
// builds a plain work closure over raw pointers; Execute() runs that closure on the libuv
// pool, so no V8 handle is touched off the event loop. The typed arrays the closure reads
// and writes are held by references until the promise settles, so they cannot be
// collected while a thread uses them.
#pragma once

#include <napi.h>

#include <exception>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace moead {

class TaskWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;                 // may throw std::exception
  // Builds the resolved value; `kept` holds the objects passed as `keep`, in order.
  using Settle = std::function<Napi::Value(Napi::Env, const std::vector<Napi::ObjectReference>& kept)>;

  static Napi::Promise Start(Napi::Env env, const std::vector<Napi::Value>& keep, Work work, Settle settle) {
    auto* worker = new TaskWorker(env, keep, std::move(work), std::move(settle));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();  // node-addon-api deletes the worker after OnOK/OnError
    return promise;
  }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(settle_(Env(), refs_)); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  TaskWorker(Napi::Env env, const std::vector<Napi::Value>& keep, Work work, Settle settle)
      : Napi::AsyncWorker(env, "moead-native"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        settle_(std::move(settle)) {
    for (const Napi::Value& v : keep) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }

  Napi::Promise::Deferred deferred_;
  Work work_;
  Settle settle_;
  std::vector<Napi::ObjectReference> refs_;
};

// Settles a post-processing task as {map, score}: the map is the output array kept alive
// as the task's second reference (null when the score alone was asked for), the score what
// the work wrote into `score`.
inline TaskWorker::Settle MapAndScoreResult(std::shared_ptr<float> score) {
  return [score](Napi::Env env, const std::vector<Napi::ObjectReference>& kept) {
    Napi::Object result = Napi::Object::New(env);
    result.Set("map", kept.size() > 1 ? kept[1].Value() : env.Null());
    result.Set("score", Napi::Number::New(env, *score));
    return result;
  };
}

}  // namespace moead
