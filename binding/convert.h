// Conversions between JS values and C++ structs/tensors. Copies JS memory before any async work.
#pragma once
#include <napi.h>
#include <torch/torch.h>
#include <map>
#include <string>
#include <vector>

#include "../cpp/dist/process_group.h"
#include "../cpp/io/state_dict.h"

namespace tlb {

// Fields lib/ always fills: a missing or mistyped one is an ERR_INVALID_OPTION naming it, never a silent default.
double need_number(const Napi::Object& o, const char* key);
bool need_bool(const Napi::Object& o, const char* key);
std::string need_string(const Napi::Value& v, const char* key);
// o[key], which must be a string
std::string need_string(const Napi::Object& o, const char* key);
std::vector<int64_t> to_shape(const Napi::Value& v, const char* what);
// {rank, worldSize, masterAddr, masterPort, timeoutMs, backend}: every field required (`what` names the call in errors).
// `device`: where the model lives (the backend is chosen for it, NCCL reduces there).
tl::DistConfig to_dist_config(const Napi::Value& v, const char* what, const std::string& device = "cpu");
// Copies a Float32Array with the given shape into a new CPU tensor (numel checked).
torch::Tensor copy_float32(const Napi::Value& data, const std::vector<int64_t>& shape, const char* what);
torch::Tensor copy_int64_labels(const Napi::Value& data, int64_t n, const char* what);
// The tensor as JS will see it, made on a worker thread: on the CPU, contiguous, in a dtype with a typed array
// (float32, float64, int64, int32, uint8; others become float32) and owning its memory (cloned when it shared the
// source's: a model's parameters are never exposed to JS writes).
torch::Tensor host_tensor(const torch::Tensor& src);
// {data, shape, dtype}: the typed array wraps the memory of a host_tensor without copying (its finalizer releases
// the tensor; a runtime that refuses external buffers gets a copy). Anything else is made a host_tensor first,
// on the calling (JS) thread: pass host tensors from workers.
Napi::Object tensor_to_js(Napi::Env env, const torch::Tensor& t);
std::map<std::string, std::string> to_string_map(const Napi::Value& v);
Napi::Object string_map_to_js(Napi::Env env, const std::map<std::string, std::string>& m);
Napi::Array strings_to_js(Napi::Env env, const std::vector<std::string>& v);

}  // namespace tlb
