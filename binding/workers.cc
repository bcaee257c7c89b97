#include "workers.h"

namespace tlb {

PromiseWorker::PromiseWorker(Napi::Env env, const char* name, ExecuteFn execute, ResolveFn resolve)
    : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
      execute_(std::move(execute)), resolve_(std::move(resolve)) {}

Napi::Promise PromiseWorker::Start(Napi::Env env, const char* name, ExecuteFn execute, ResolveFn resolve,
                                   std::vector<Napi::Object> keep_alive) {
  auto* w = new PromiseWorker(env, name, std::move(execute), std::move(resolve));
  for (auto& o : keep_alive) w->refs_.push_back(Napi::Persistent(o));
  auto promise = w->deferred_.Promise();
  w->Queue();
  return promise;
}

void PromiseWorker::Execute() {
  try {
    execute_();
  } catch (...) {
    failed_ = true;
    error_ = classify_current_exception();
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (failed_) {
    deferred_.Reject(make_error(env, error_).Value());
    return;
  }
  try {
    deferred_.Resolve(resolve_ ? resolve_(env) : env.Undefined());
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (...) {
    deferred_.Reject(make_error(env, classify_current_exception()).Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& e) { deferred_.Reject(e.Value()); }

}  // namespace tlb
