#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "errors.h"

namespace tl {
namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MB, as the reference implementation

const std::map<std::string, torch::ScalarType>& dtypes() {
  static const std::map<std::string, torch::ScalarType> kTypes = {
      {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
      {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
      {"U8", torch::kUInt8},    {"BOOL", torch::kBool}};
  return kTypes;
}

std::string dtype_name(torch::ScalarType t) {
  for (auto& kv : dtypes())
    if (kv.second == t) return kv.first;
  throw CheckpointError(std::string("cannot write dtype ") + c10::toString(t) + " to safetensors");
}

}  // namespace

namespace {
// Reads and parses the JSON header; leaves `in` positioned after it.
nlohmann::json read_header(std::ifstream& in, const std::string& path, uint64_t* data_start, uint64_t* data_size) {
  if (!in) throw CheckpointError(path + ": cannot open file");
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8) throw CheckpointError(path + ": too short for a safetensors file");
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  if (header_len > kMaxHeader || header_len > file_size - 8)
    throw CheckpointError(path + ": safetensors header length " + std::to_string(header_len) +
                          " exceeds the file or the 100 MB limit");
  std::string header(header_len, '\0');
  in.read(&header[0], header_len);
  if (static_cast<uint64_t>(in.gcount()) != header_len) throw CheckpointError(path + ": truncated safetensors header");
  *data_start = 8 + header_len;
  *data_size = file_size - *data_start;
  nlohmann::json j;
  try {
    // A header is two levels deep (tensor name -> {dtype, shape, data_offsets}); anything nested deeper than a few
    // levels is refused while parsing (no deep values to destroy or print).
    j = nlohmann::json::parse(header, [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > 8) throw CheckpointError(path + ": safetensors header nests JSON deeper than 8 levels");
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(path + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw CheckpointError(path + ": safetensors header is not a JSON object");
  return j;
}

void read_metadata_field(const nlohmann::json& m, const std::string& path, std::map<std::string, std::string>* out) {
  if (!m.is_object()) throw CheckpointError(path + ": __metadata__ is not an object");
  for (auto it = m.begin(); it != m.end(); ++it)
    if (it->is_string()) (*out)[it.key()] = it->get<std::string>();
}
}  // namespace

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw CheckpointError(path + ": cannot open file");
  uint64_t data_start = 0, data_size = 0;
  auto j = read_header(in, path, &data_start, &data_size);
  std::map<std::string, std::string> out;
  if (j.contains("__metadata__")) read_metadata_field(j["__metadata__"], path, &out);
  return out;
}

StateDict read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw CheckpointError(path + ": cannot open file");
  uint64_t data_start = 0, data_size = 0;
  auto j = read_header(in, path, &data_start, &data_size);

  struct Entry {
    std::string name;
    torch::ScalarType dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  StateDict sd;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      read_metadata_field(*it, path, &sd.metadata);
      continue;
    }
    const auto& v = *it;
    const std::string where = path + ": tensor '" + it.key() + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw CheckpointError(where + " lacks dtype, shape or data_offsets");
    if (!v["dtype"].is_string() || !dtypes().count(v["dtype"].get<std::string>()))
      throw CheckpointError(where + " has unsupported dtype " +
                            (v["dtype"].is_string() ? "\"" + v["dtype"].get<std::string>().substr(0, 32) + "\"" : std::string("of JSON type ") + v["dtype"].type_name()));
    Entry e;
    e.name = it.key();
    e.dtype = dtypes().at(v["dtype"].get<std::string>());
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw CheckpointError(where + " has malformed data_offsets");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (!v["shape"].is_array() || v["shape"].size() > 64) throw CheckpointError(where + " has a malformed shape");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (1ull << 40)) throw CheckpointError(where + " has a malformed shape");
      e.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
      numel *= d.get<uint64_t>();
      if (numel > (1ull << 40)) throw CheckpointError(where + " is too large");
    }
    if (e.begin > e.end || e.end > data_size)
      throw CheckpointError(where + " has data offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                            "] outside the " + std::to_string(data_size) + "-byte data section");
    if (e.end - e.begin != numel * c10::elementSize(e.dtype))
      throw CheckpointError(where + ": byte length " + std::to_string(e.end - e.begin) + " does not match its shape and dtype");
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  // As the reference implementation requires: the tensors tile the data section, in order, without gaps or overlap.
  uint64_t next = 0;
  for (const auto& e : entries) {
    if (e.begin != next)
      throw CheckpointError(path + ": tensor '" + e.name + "' starts at byte " + std::to_string(e.begin) + " of the data section where " +
                            std::to_string(next) + " was expected (tensors must not overlap or leave gaps)");
    next = e.end;
  }
  if (next != data_size)
    throw CheckpointError(path + ": the tensors cover " + std::to_string(next) + " of the " + std::to_string(data_size) +
                          " bytes of the data section");
  for (const auto& e : entries) {
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
    in.seekg(static_cast<std::streamoff>(data_start + e.begin));
    in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(e.end - e.begin));
    if (static_cast<uint64_t>(in.gcount()) != e.end - e.begin) throw CheckpointError(path + ": truncated tensor data");
    sd.tensors.insert(e.name, t);
  }
  if (sd.tensors.is_empty()) throw CheckpointError(path + ": safetensors file holds no tensors");
  strip_module_prefix(sd);
  return sd;
}

void write_safetensors(const std::string& path, const StateDict& sd) {
  nlohmann::ordered_json header;
  if (!sd.metadata.empty()) header["__metadata__"] = sd.metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& kv : sd.tensors) {
    auto t = kv.value().detach().to(torch::kCPU).contiguous();
    uint64_t n = t.numel() * t.element_size();
    header[kv.key()] = {{"dtype", dtype_name(t.scalar_type())},
                        {"shape", t.sizes().vec()},
                        {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(t);
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  write_atomic(path, [&](const Sink& sink) {
    uint64_t len = h.size();
    sink(&len, 8);
    sink(h.data(), h.size());
    for (const auto& t : data) sink(t.data_ptr(), t.numel() * t.element_size());
  });
}

}  // namespace tl
