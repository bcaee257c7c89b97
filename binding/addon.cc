// Addon entry: module-level functions and the NativeModel class.
#include <napi.h>

#include <chrono>
#include <cstdio>
#include <unistd.h>

#include "../cpp/runtime/cpu_allocator.h"
#include "../cpp/device.h"
#include "../cpp/io/checkpoint.h"
#include "../cpp/data/transforms.h"
#include "../cpp/dist/process_group.h"
#include "../cpp/models/registry.h"
#include "convert.h"
#include "data_wrap.h"
#include "model_wrap.h"
#include "workers.h"

namespace tlb {
void InitTrainer(Napi::Env env, Napi::Object exports);
void InitTransfer(Napi::Env env, Napi::Object exports);
namespace {

Napi::Value CreateModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw std::invalid_argument("createModel expects an options object");
  auto o = info[0].As<Napi::Object>();
  tl::ModelConfig cfg;
  cfg.arch = need_string(o, "arch");
  cfg.num_classes = static_cast<int64_t>(need_number(o, "numClasses"));
  cfg.dropout = need_number(o, "dropout");
  cfg.device = need_string(o, "device");
  cfg.channels_last = need_bool(o, "channelsLast");
  cfg.head = need_string(o, "head");
  cfg.fuse = need_bool(o, "fuse");
  tl::parse_device(cfg.device);  // fail fast, on the JS thread, for a missing device
  auto out = std::make_shared<std::shared_ptr<tl::ModelRunner>>();
  return PromiseWorker::Start(
      env, "tl.createModel", [cfg, out] { *out = std::make_shared<tl::ModelRunner>(cfg); },
      [out](Napi::Env e) -> Napi::Value { return ModelWrap::NewInstance(e, *out); });
}

Napi::Value ReadCheckpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto sd = std::make_shared<tl::StateDict>();
  auto stored = std::make_shared<std::map<std::string, std::string>>();  // dtype in the file, where JS gets float32
  return PromiseWorker::Start(
      env, "tl.readCheckpoint",
      [path, sd, stored] {
        *sd = tl::read_checkpoint(path);
        for (auto& kv : sd->tensors) {
          auto host = host_tensor(kv.value());
          if (host.scalar_type() != kv.value().scalar_type()) (*stored)[kv.key()] = c10::toString(kv.value().scalar_type());
          kv.value() = host;
        }
      },
      [sd, stored](Napi::Env e) -> Napi::Value {
        Napi::Object out = Napi::Object::New(e);
        Napi::Object tensors = Napi::Object::New(e);
        Napi::Array keys = Napi::Array::New(e, sd->tensors.size());
        uint32_t i = 0;
        for (const auto& kv : sd->tensors) {
          auto t = tensor_to_js(e, kv.value());
          auto it = stored->find(kv.key());
          if (it != stored->end()) t.Set("dtype", it->second);
          tensors.Set(kv.key(), t);
          keys.Set(i++, kv.key());
        }
        out.Set("keys", keys);
        out.Set("tensors", tensors);
        out.Set("metadata", string_map_to_js(e, sd->metadata));
        return out;
      });
}

Napi::Value ReadCheckpointMetadata(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto meta = std::make_shared<std::map<std::string, std::string>>();
  return PromiseWorker::Start(
      env, "tl.readCheckpointMetadata", [path, meta] { *meta = tl::read_checkpoint_metadata(path); },
      [meta](Napi::Env e) -> Napi::Value { return string_map_to_js(e, *meta); });
}

// The default CPU generator's state (dropout, random init) as bytes, for checkpoints and resume.
Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  auto gen = at::detail::getDefaultCPUGenerator();
  torch::Tensor st;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    st = gen.get_state();
  }
  auto buf = Napi::Buffer<uint8_t>::Copy(info.Env(), st.data_ptr<uint8_t>(), st.numel());
  return buf;
}
Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  auto b = info[0].As<Napi::Buffer<uint8_t>>();
  auto st = torch::empty({static_cast<int64_t>(b.Length())}, torch::kUInt8);
  std::memcpy(st.data_ptr<uint8_t>(), b.Data(), b.Length());
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(st);
  return info.Env().Undefined();
}
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  torch::manual_seed(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
}

Napi::Value Version(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("libtorch", tl::torch_version());
  o.Set("variant", tl::libtorch_variant());
  o.Set("cuda", tl::built_with_cuda() || tl::cuda_available());
  o.Set("cudaAvailable", tl::cuda_available());
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("bf16", tl::cpu_has_bf16());
  cpu.Set("avx512", tl::cpu_has_avx512());
  o.Set("cpu", cpu);
  o.Set("threads", tl::get_num_threads());
  o.Set("napi", NAPI_VERSION);
  o.Set("distributed", strings_to_js(env, tl::ProcessGroup::backends()));
  return o;
}

Napi::Value Devices(const Napi::CallbackInfo& info) { return strings_to_js(info.Env(), tl::available_devices()); }
Napi::Value CudaDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto list = tl::cuda_devices();
  Napi::Array out = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", list[i].device);
    o.Set("name", list[i].name);
    o.Set("totalMemory", static_cast<double>(list[i].total_memory));
    o.Set("computeCapability", std::to_string(list[i].major) + "." + std::to_string(list[i].minor));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}
Napi::Value SetCudnnBenchmark(const Napi::CallbackInfo& info) {
  tl::set_cudnn_benchmark(info[0].As<Napi::Boolean>().Value());
  return info.Env().Undefined();
}
Napi::Value CudnnBenchmark(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), tl::cudnn_benchmark()); }
Napi::Value SetAllowTF32(const Napi::CallbackInfo& info) {
  tl::set_allow_tf32(info[0].As<Napi::Boolean>().Value());
  return info.Env().Undefined();
}
Napi::Value AllowTF32(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), tl::allow_tf32()); }
Napi::Value CudaAvailable(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), tl::cuda_available()); }
Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), tl::cuda_device_count());
}
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  tl::set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}
Napi::Value SetComputeNice(const Napi::CallbackInfo& info) {
  tl::set_compute_nice(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}
Napi::Value GetComputeNice(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tl::compute_nice()); }
Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tl::get_num_threads()); }
Napi::Value Architectures(const Napi::CallbackInfo& info) { return strings_to_js(info.Env(), tl::architectures()); }
// allreduceBenchmark({rank, worldSize, masterAddr, masterPort, timeoutMs, bucketBytes, numel, iterations}):
// joins a process group and times `iterations` bucketed mean all-reduces of `numel` floats (what a step's gradient
// averaging does); resolves with the seconds of each. For bench:dist.
Napi::Value AllreduceBenchmark(const Napi::CallbackInfo& info) {
  const tl::DistConfig cfg = to_dist_config(info[0], "allreduceBenchmark");
  auto o = info[0].As<Napi::Object>();
  const auto bucket = static_cast<int64_t>(need_number(o, "bucketBytes"));
  const auto numel = static_cast<int64_t>(need_number(o, "numel"));
  const int iterations = static_cast<int>(need_number(o, "iterations"));
  auto times = std::make_shared<std::vector<double>>();
  return PromiseWorker::Start(
      info.Env(), "tl.allreduceBenchmark",
      [cfg, bucket, numel, iterations, times] {
        tl::ProcessGroup pg(cfg);
        auto grad = torch::ones({numel}, torch::TensorOptions(torch::kFloat32).device(pg.collective_device()));
        // tensors the size of a model's parameters would be bucketed the same way: one flat tensor is the worst case
        std::vector<torch::Tensor> grads{grad};
        pg.allreduce_mean(grads, bucket);  // warm-up (connections)
        for (int i = 0; i < iterations; ++i) {
          const auto t0 = std::chrono::steady_clock::now();
          pg.allreduce_mean(grads, bucket);
          times->push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
      },
      [times](Napi::Env e) -> Napi::Value {
        auto a = Napi::Array::New(e, times->size());
        for (size_t i = 0; i < times->size(); ++i) a.Set(static_cast<uint32_t>(i), (*times)[i]);
        return a;
      });
}

Napi::Value TransformOps(const Napi::CallbackInfo& info) { return strings_to_js(info.Env(), tl::op_names()); }

Napi::Value SetCpuCacheLimit(const Napi::CallbackInfo& info) {
  tl::set_cpu_cache_limit(static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue()));
  return info.Env().Undefined();
}
Napi::Value EmptyCpuCache(const Napi::CallbackInfo& info) {
  tl::empty_cpu_cache();
  return info.Env().Undefined();
}
// Ends the process at once with the given code. process.exit() joins libuv's thread pool first, so it waits for the
// native step in flight (seconds for a training step); stdio is flushed, and every file this library writes is atomic.
// Strict arguments (exactly one integer exit code, 0-255): anything else is an invalid option, never an exit.
Napi::Value ExitNow(const Napi::CallbackInfo& info) {
  const double c = info.Length() == 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1.0;
  if (!(c >= 0 && c <= 255 && c == static_cast<double>(static_cast<int>(c))))
    throw std::invalid_argument("exitNow(code): code must be one integer from 0 to 255");
  const int code = static_cast<int>(c);
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(code);
}
Napi::Value CpuCacheStats(const Napi::CallbackInfo& info) {
  auto s = tl::cpu_cache_stats();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("cachedBytes", static_cast<double>(s.cached_bytes));
  o.Set("limitBytes", static_cast<double>(s.limit_bytes));
  o.Set("hits", static_cast<double>(s.hits));
  o.Set("misses", static_cast<double>(s.misses));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tl::get_num_threads();  // default: all cores
  tl::install_cpu_cache(tl::default_cpu_cache_limit());
  exports.Set("NativeModel", ModelWrap::Init(env));
  InitData(env, exports);
  InitTrainer(env, exports);
  InitTransfer(env, exports);
  exports.Set("createModel", Napi::Function::New(env, guarded<CreateModel>));
  exports.Set("readCheckpoint", Napi::Function::New(env, guarded<ReadCheckpoint>));
  exports.Set("readCheckpointMetadata", Napi::Function::New(env, guarded<ReadCheckpointMetadata>));
  exports.Set("getRngState", Napi::Function::New(env, guarded<GetRngState>));
  exports.Set("setRngState", Napi::Function::New(env, guarded<SetRngState>));
  exports.Set("manualSeed", Napi::Function::New(env, guarded<ManualSeed>));
  exports.Set("version", Napi::Function::New(env, guarded<Version>));
  exports.Set("devices", Napi::Function::New(env, guarded<Devices>));
  exports.Set("cudaAvailable", Napi::Function::New(env, guarded<CudaAvailable>));
  exports.Set("cudaDevices", Napi::Function::New(env, guarded<CudaDevices>));
  exports.Set("setCudnnBenchmark", Napi::Function::New(env, guarded<SetCudnnBenchmark>));
  exports.Set("cudnnBenchmark", Napi::Function::New(env, guarded<CudnnBenchmark>));
  exports.Set("setAllowTF32", Napi::Function::New(env, guarded<SetAllowTF32>));
  exports.Set("allowTF32", Napi::Function::New(env, guarded<AllowTF32>));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, guarded<CudaDeviceCount>));
  exports.Set("setNumThreads", Napi::Function::New(env, guarded<SetNumThreads>));
  exports.Set("setComputeNice", Napi::Function::New(env, guarded<SetComputeNice>));
  exports.Set("getComputeNice", Napi::Function::New(env, guarded<GetComputeNice>));
  exports.Set("getNumThreads", Napi::Function::New(env, guarded<GetNumThreads>));
  exports.Set("architectures", Napi::Function::New(env, guarded<Architectures>));
  exports.Set("transformOps", Napi::Function::New(env, guarded<TransformOps>));
  exports.Set("allreduceBenchmark", Napi::Function::New(env, guarded<AllreduceBenchmark>));
  exports.Set("setCpuCacheLimit", Napi::Function::New(env, guarded<SetCpuCacheLimit>));
  exports.Set("emptyCpuCache", Napi::Function::New(env, guarded<EmptyCpuCache>));
  exports.Set("cpuCacheStats", Napi::Function::New(env, guarded<CpuCacheStats>));
  exports.Set("exitNow", Napi::Function::New(env, guarded<ExitNow>));
  return exports;
}

}  // namespace
}  // namespace tlb

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return tlb::Init(env, exports); }
NODE_API_MODULE(torch_resnet_tl, InitAddon)
