#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "errors.h"
#include "io/pickle.h"

namespace tl {
namespace {

const char* kMetadataRecord = "torch_resnet_tl.json";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void byteswap_inplace(torch::Tensor& t) {
  size_t es = t.element_size();
  if (es == 1) return;
  auto* p = static_cast<uint8_t*>(t.data_ptr());
  for (int64_t i = 0; i < t.numel(); ++i) std::reverse(p + i * es, p + (i + 1) * es);
}

// Picks the tensor dict out of the unpickled object.
// Follows {state_dict|model_state_dict|model} wrappers a few levels down; a wrapper that leads back to a dict
// already visited (a dict that holds itself) is refused rather than followed forever.
const PyValue* find_state_dict(const PyValue& root, const std::string& path) {
  const PyValue* cur = &root;
  std::vector<const PyValue*> seen;
  for (int level = 0; level < 8; ++level) {
    if (cur->kind != PyValue::Dict) throw CheckpointError(path + ": checkpoint does not hold a dict of tensors");
    seen.push_back(cur);
    const PyValue* inner = nullptr;
    for (const char* wrapper : {"state_dict", "model_state_dict", "model"}) {
      for (const auto& kv : cur->dict)
        if (kv.first->kind == PyValue::Str && kv.first->s == wrapper && kv.second->kind == PyValue::Dict) {
          inner = kv.second.get();
          break;
        }
      if (inner) break;
    }
    if (!inner) return cur;
    if (std::find(seen.begin(), seen.end(), inner) != seen.end())
      throw CheckpointError(path + ": malformed checkpoint: a state_dict wrapper contains itself");
    cur = inner;
  }
  throw CheckpointError(path + ": malformed checkpoint: state_dict wrappers nested more than 8 levels");
}

}  // namespace

StateDict read_pth(const std::string& path) {
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CheckpointError(path + ": cannot open file");
    char magic[4] = {0};
    in.read(magic, 4);
    if (in.gcount() < 4 || std::memcmp(magic, "PK\x03\x04", 4) != 0)
      throw CheckpointError(path + ": not a PyTorch zip checkpoint (wrong magic; legacy torch.save files are not supported)");
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": corrupt zip checkpoint: " + e.what_without_backtrace());
  }
  bool big_endian = false;
  if (reader->hasRecord("byteorder")) {
    auto rec = reader->getRecord("byteorder");
    std::string order(static_cast<const char*>(std::get<0>(rec).get()), std::get<1>(rec));
    if (order != "little" && order != "big") throw CheckpointError(path + ": unknown byteorder '" + order + "'");
    big_endian = order == "big";
  }
  if (!reader->hasRecord("data.pkl")) throw CheckpointError(path + ": zip checkpoint has no data.pkl");
  auto pkl = reader->getRecord("data.pkl");
  // One tensor per storage record, as torch.load shares one storage among its views: a pickle that names the same
  // record many times gets the same memory, not a copy each time.
  std::map<std::string, torch::Tensor> storages;
  StorageResolver resolve = [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    if (key.empty() || key.find_first_not_of("0123456789") != std::string::npos)
      throw CheckpointError(path + ": invalid storage key '" + key + "'");
    auto known = storages.find(key);
    if (known != storages.end()) {
      if (known->second.scalar_type() != dtype || known->second.numel() < numel)
        throw CheckpointError(path + ": storage " + key + " is named with two different types or sizes");
      return known->second;
    }
    std::string name = "data/" + key;
    if (!reader->hasRecord(name)) throw CheckpointError(path + ": storage record " + name + " is missing");
    auto rec = reader->getRecord(name);
    size_t bytes = std::get<1>(rec);
    size_t es = c10::elementSize(dtype);
    if (numel < 0 || static_cast<uint64_t>(numel) > bytes / es)
      throw CheckpointError(path + ": storage " + name + " holds " + std::to_string(bytes) + " bytes, fewer than " +
                            std::to_string(numel) + " elements need");
    auto t = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    if (numel) std::memcpy(t.data_ptr(), std::get<0>(rec).get(), numel * es);
    if (big_endian) byteswap_inplace(t);
    storages.emplace(key, t);
    return t;
  };
  PyRef root;
  try {
    root = unpickle(static_cast<const uint8_t*>(std::get<0>(pkl).get()), std::get<1>(pkl), resolve, path);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": corrupt zip checkpoint: " + e.what_without_backtrace());
  }
  // whatever happens below, the unpickled graph is emptied afterwards (cycles a hostile pickle made are freed)
  std::unique_ptr<PyRef, void (*)(PyRef*)> release(&root, [](PyRef* r) { release_pickle(*r); });
  const PyValue* dict = find_state_dict(*root, path);
  StateDict sd;
  for (const auto& kv : dict->dict) {
    if (kv.second->kind != PyValue::Tensor) continue;
    if (kv.first->kind != PyValue::Str) throw CheckpointError(path + ": state dict key is not a string");
    if (sd.tensors.contains(kv.first->s)) throw CheckpointError(path + ": duplicate key '" + kv.first->s + "'");
    sd.tensors.insert(kv.first->s, kv.second->tensor);
  }
  if (sd.tensors.is_empty()) throw CheckpointError(path + ": checkpoint holds no tensors");
  if (reader->hasRecord(kMetadataRecord)) {
    auto rec = reader->getRecord(kMetadataRecord);
    try {
      auto j = nlohmann::json::parse(static_cast<const char*>(std::get<0>(rec).get()),
                                     static_cast<const char*>(std::get<0>(rec).get()) + std::get<1>(rec));
      for (auto it = j.begin(); it != j.end(); ++it)
        if (it->is_string()) sd.metadata[it.key()] = it->get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      throw CheckpointError(path + ": corrupt metadata record: " + e.what());
    }
  }
  strip_module_prefix(sd);
  return sd;
}

void write_pth(const std::string& path, const StateDict& sd) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& kv : sd.tensors)
    tensors.emplace_back(kv.key(), kv.value().detach().to(torch::kCPU).contiguous());
  std::string pkl = pickle_state_dict(tensors);
  write_atomic(path, [&](const Sink& sink) {
    // A failing sink (disk full) must not throw through the zip writer: its destructor finishes the archive and
    // would call the sink again, and an exception there ends the process. The first error is kept, later writes are
    // dropped, and the error is thrown once the writer is done (the temporary file is then removed).
    std::exception_ptr failed;
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) -> size_t {
      if (!failed) {
        try {
          sink(data, n);
        } catch (...) {
          failed = std::current_exception();
        }
      }
      return n;
    });
    writer.writeRecord("data.pkl", pkl.data(), pkl.size());
    writer.writeRecord("byteorder", "little", 6);
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto& t = tensors[i].second;
      writer.writeRecord("data/" + std::to_string(i), t.data_ptr(), t.numel() * t.element_size());
    }
    if (!sd.metadata.empty()) {
      std::string meta = nlohmann::json(sd.metadata).dump();
      writer.writeRecord(kMetadataRecord, meta.data(), meta.size());
    }
    writer.writeEndOfFile();
    if (failed) std::rethrow_exception(failed);
  });
}

std::map<std::string, std::string> read_checkpoint_metadata(const std::string& path) {
  if (ends_with(path, ".safetensors")) return read_safetensors_metadata(path);
  std::map<std::string, std::string> out;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord(kMetadataRecord)) return out;
    auto rec = reader.getRecord(kMetadataRecord);
    auto j = nlohmann::json::parse(static_cast<const char*>(std::get<0>(rec).get()),
                                   static_cast<const char*>(std::get<0>(rec).get()) + std::get<1>(rec));
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it->is_string()) out[it.key()] = it->get<std::string>();
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": not a readable PyTorch zip checkpoint: " + e.what_without_backtrace());
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(path + ": corrupt metadata record: " + e.what());
  }
  return out;
}

StateDict read_checkpoint(const std::string& path) {
  return ends_with(path, ".safetensors") ? read_safetensors(path) : read_pth(path);
}

void write_checkpoint(const std::string& path, const StateDict& sd) {
  if (ends_with(path, ".safetensors"))
    write_safetensors(path, sd);
  else
    write_pth(path, sd);
}

}  // namespace tl
