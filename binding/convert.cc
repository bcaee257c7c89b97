#include "convert.h"

#include <cstring>

namespace tlb {

double need_number(const Napi::Object& o, const char* key) {
  auto v = o.Get(key);
  if (!v.IsNumber()) throw std::invalid_argument(std::string("option ") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}
bool need_bool(const Napi::Object& o, const char* key) {
  auto v = o.Get(key);
  if (!v.IsBoolean()) throw std::invalid_argument(std::string("option ") + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}
std::string need_string(const Napi::Value& v, const char* key) {
  if (!v.IsString()) throw std::invalid_argument(std::string("option ") + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}
std::string need_string(const Napi::Object& o, const char* key) { return need_string(o.Get(key), key); }

std::vector<int64_t> to_shape(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw std::invalid_argument(std::string(what) + " must be an array of dimensions");
  auto a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value d = a.Get(i);
    if (!d.IsNumber()) throw std::invalid_argument(std::string(what) + " must hold integers");
    double x = d.As<Napi::Number>().DoubleValue();
    if (x < 0 || x != static_cast<int64_t>(x)) throw std::invalid_argument(std::string(what) + " must hold non-negative integers");
    out.push_back(static_cast<int64_t>(x));
  }
  return out;
}

tl::DistConfig to_dist_config(const Napi::Value& v, const char* what, const std::string& device) {
  if (!v.IsObject()) throw std::invalid_argument(std::string(what) + " expects an options object");
  auto o = v.As<Napi::Object>();
  tl::DistConfig cfg;
  cfg.rank = static_cast<int>(need_number(o, "rank"));
  cfg.world_size = static_cast<int>(need_number(o, "worldSize"));
  cfg.master_addr = need_string(o, "masterAddr");
  cfg.master_port = static_cast<int>(need_number(o, "masterPort"));
  cfg.timeout_ms = static_cast<int64_t>(need_number(o, "timeoutMs"));
  cfg.device = device;
  cfg.backend = tl::ProcessGroup::choose_backend(need_string(o, "backend"), torch::Device(device));
  return cfg;
}

torch::Tensor copy_float32(const Napi::Value& data, const std::vector<int64_t>& shape, const char* what) {
  if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw std::invalid_argument(std::string(what) + " must be a Float32Array");
  auto arr = data.As<Napi::Float32Array>();
  int64_t numel = 1;
  for (auto s : shape) numel *= s;
  if (static_cast<int64_t>(arr.ElementLength()) != numel)
    throw std::invalid_argument(std::string(what) + " has " + std::to_string(arr.ElementLength()) +
                                " values but its shape needs " + std::to_string(numel));
  auto t = torch::empty(shape, torch::kFloat32);
  if (numel) std::memcpy(t.data_ptr<float>(), arr.Data(), numel * sizeof(float));
  return t;
}

torch::Tensor copy_int64_labels(const Napi::Value& data, int64_t n, const char* what) {
  auto t = torch::empty({n}, torch::kInt64);
  if (data.IsTypedArray()) {
    auto ta = data.As<Napi::TypedArray>();
    if (static_cast<int64_t>(ta.ElementLength()) != n) throw std::invalid_argument(std::string(what) + " length does not match the batch");
  } else if (!data.IsArray()) {
    throw std::invalid_argument(std::string(what) + " must be an array of class indices");
  }
  auto o = data.As<Napi::Object>();
  for (int64_t i = 0; i < n; ++i) {
    Napi::Value v = o.Get(static_cast<uint32_t>(i));
    if (!v.IsNumber()) throw std::invalid_argument(std::string(what) + " must hold integers");
    t[i] = static_cast<int64_t>(v.As<Napi::Number>().DoubleValue());
  }
  return t;
}

namespace {

bool js_dtype(torch::ScalarType t) {
  return t == torch::kFloat32 || t == torch::kFloat64 || t == torch::kInt64 || t == torch::kInt32 || t == torch::kUInt8;
}

bool is_host(const torch::Tensor& t) { return t.device().is_cpu() && t.is_contiguous() && js_dtype(t.scalar_type()); }

// An ArrayBuffer over the tensor's memory (kept alive by the buffer), or a copy where external buffers are refused.
Napi::ArrayBuffer wrap_memory(Napi::Env env, const torch::Tensor& t) {
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  if (bytes > 0) {
    auto* owner = new torch::Tensor(t);
    napi_value ab;
    if (napi_create_external_arraybuffer(env, owner->data_ptr(), bytes, [](napi_env, void*, void* hint) { delete static_cast<torch::Tensor*>(hint); },
                                         owner, &ab) == napi_ok)
      return Napi::ArrayBuffer(env, ab);
    delete owner;
    // a pending exception from the refusal would surface later: clear it
    napi_value ignored;
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &ignored);
  }
  auto copy = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(copy.Data(), t.data_ptr(), bytes);
  return copy;
}

}  // namespace

torch::Tensor host_tensor(const torch::Tensor& src) {
  auto t = src.detach();
  if (!js_dtype(t.scalar_type())) t = t.to(torch::kFloat32);
  t = t.to(torch::kCPU).contiguous();
  if (t.defined() && src.defined() && t.storage().is_alias_of(src.storage())) t = t.clone();
  return t;
}

Napi::Object tensor_to_js(Napi::Env env, const torch::Tensor& src) {
  const torch::Tensor t = is_host(src) ? src : host_tensor(src);
  Napi::Object out = Napi::Object::New(env);
  Napi::Array shape = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
  out.Set("shape", shape);
  const size_t n = static_cast<size_t>(t.numel());
  auto buf = wrap_memory(env, t);
  switch (t.scalar_type()) {
    case torch::kInt64:
      out.Set("data", Napi::BigInt64Array::New(env, n, buf, 0));
      out.Set("dtype", "int64");
      break;
    case torch::kInt32:
      out.Set("data", Napi::Int32Array::New(env, n, buf, 0));
      out.Set("dtype", "int32");
      break;
    case torch::kFloat64:
      out.Set("data", Napi::Float64Array::New(env, n, buf, 0));
      out.Set("dtype", "float64");
      break;
    case torch::kUInt8:
      out.Set("data", Napi::Uint8Array::New(env, n, buf, 0));
      out.Set("dtype", "uint8");
      break;
    default:
      out.Set("data", Napi::Float32Array::New(env, n, buf, 0));
      out.Set("dtype", "float32");
  }
  return out;
}

std::map<std::string, std::string> to_string_map(const Napi::Value& v) {
  std::map<std::string, std::string> m;
  if (!v.IsObject()) return m;
  auto o = v.As<Napi::Object>();
  auto keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value x = o.Get(k);
    if (x.IsString()) m[k] = x.As<Napi::String>().Utf8Value();
  }
  return m;
}

Napi::Object string_map_to_js(Napi::Env env, const std::map<std::string, std::string>& m) {
  Napi::Object o = Napi::Object::New(env);
  for (auto& kv : m) o.Set(kv.first, kv.second);
  return o;
}

Napi::Array strings_to_js(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

}  // namespace tlb
