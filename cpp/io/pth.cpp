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

// Little-endian readers for the zip structures.
uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Checks every entry of the zip's central directory (returns each entry's size by name) before libtorch's reader allocates anything: each entry's data
// must lie inside the file, a stored entry's size must equal its compressed size, and a deflated one may not claim
// more than deflate's maximum ratio (1032:1). Without this a 1 KB file can declare a 100 GB entry, which the reader
// allocates in full before noticing the data is not there.
std::map<std::string, uint64_t> check_zip_entries(const std::string& path) {
  std::map<std::string, uint64_t> sizes;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw CheckpointError(path + ": cannot open file");
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  const uint64_t tail_len = std::min<uint64_t>(file_size, 65535 + 22);
  std::vector<uint8_t> tail(tail_len);
  in.seekg(static_cast<std::streamoff>(file_size - tail_len));
  in.read(reinterpret_cast<char*>(tail.data()), static_cast<std::streamsize>(tail_len));
  int64_t eocd = -1;
  for (int64_t i = static_cast<int64_t>(tail_len) - 22; i >= 0; --i)
    if (le(&tail[i], 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd < 0) throw CheckpointError(path + ": corrupt zip checkpoint: no end-of-central-directory record");
  uint64_t entries = le(&tail[eocd + 10], 2), cd_size = le(&tail[eocd + 12], 4), cd_offset = le(&tail[eocd + 16], 4);
  const uint64_t eocd_pos = file_size - tail_len + static_cast<uint64_t>(eocd);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    // zip64: the locator (20 bytes before the EOCD) points at the zip64 end record
    if (eocd < 20 || le(&tail[eocd - 20], 4) != 0x07064b50) throw CheckpointError(path + ": corrupt zip checkpoint: zip64 locator missing");
    const uint64_t rec = le(&tail[eocd - 20 + 8], 8);
    uint8_t z[56];
    if (rec > file_size - 56) throw CheckpointError(path + ": corrupt zip checkpoint: zip64 record outside the file");
    in.seekg(static_cast<std::streamoff>(rec));
    in.read(reinterpret_cast<char*>(z), 56);
    if (!in || le(z, 4) != 0x06064b50) throw CheckpointError(path + ": corrupt zip checkpoint: bad zip64 record");
    entries = le(z + 32, 8);
    cd_size = le(z + 40, 8);
    cd_offset = le(z + 48, 8);
  }
  if (cd_offset > eocd_pos || cd_size > eocd_pos - cd_offset || entries > cd_size / 46)
    throw CheckpointError(path + ": corrupt zip checkpoint: central directory outside the file");
  std::vector<uint8_t> cd(cd_size);
  in.seekg(static_cast<std::streamoff>(cd_offset));
  in.read(reinterpret_cast<char*>(cd.data()), static_cast<std::streamsize>(cd_size));
  if (!in) throw CheckpointError(path + ": corrupt zip checkpoint: truncated central directory");
  size_t pos = 0;
  for (uint64_t e = 0; e < entries; ++e) {
    if (pos + 46 > cd.size() || le(&cd[pos], 4) != 0x02014b50) throw CheckpointError(path + ": corrupt zip checkpoint: bad central directory entry");
    const uint8_t* h = &cd[pos];
    const uint64_t method = le(h + 10, 2), name_len = le(h + 28, 2), extra_len = le(h + 30, 2), comment_len = le(h + 32, 2);
    uint64_t comp = le(h + 20, 4), uncomp = le(h + 24, 4), offset = le(h + 42, 4);
    if (pos + 46 + name_len + extra_len + comment_len > cd.size()) throw CheckpointError(path + ": corrupt zip checkpoint: bad central directory entry");
    const std::string name(reinterpret_cast<const char*>(h + 46), name_len);
    // zip64 extended information: the 64-bit values, in this order, of the fields that hold 0xFFFFFFFF
    for (size_t x = 46 + name_len; x + 4 <= 46 + name_len + extra_len;) {
      const uint64_t id = le(h + x, 2), len = le(h + x + 2, 2);
      if (x + 4 + len > 46 + name_len + extra_len) break;
      if (id == 1) {
        size_t f = x + 4;
        auto next = [&](uint64_t* v) {
          if (*v == 0xFFFFFFFF && f + 8 <= x + 4 + len) {
            *v = le(h + f, 8);
            f += 8;
          }
        };
        next(&uncomp);
        next(&comp);
        next(&offset);
      }
      x += 4 + len;
    }
    const std::string where = path + ": corrupt zip checkpoint: entry '" + name + "'";
    if (offset > file_size || comp > file_size - offset) throw CheckpointError(where + " lies outside the file");
    if (method == 0 && uncomp != comp) throw CheckpointError(where + " declares " + std::to_string(uncomp) + " bytes but stores " + std::to_string(comp));
    if (method != 0 && uncomp / 1032 > comp) throw CheckpointError(where + " claims a compression ratio above deflate's maximum");
    sizes[name] = uncomp;
    pos += 46 + name_len + extra_len + comment_len;
  }
  return sizes;
}

}  // namespace

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

namespace {
StateDict read_pth_unchecked(const std::string& path);
}

// libtorch's zip reader reports corrupt records (bad CRC, unreadable entries) as c10::Error from any call, not only
// the constructor: every one becomes a CheckpointError naming the file.
StateDict read_pth(const std::string& path) {
  try {
    return read_pth_unchecked(path);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": corrupt zip checkpoint: " + e.what_without_backtrace());
  }
}

namespace {
StateDict read_pth_unchecked(const std::string& path) {
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CheckpointError(path + ": cannot open file");
    char magic[4] = {0};
    in.read(magic, 4);
    if (in.gcount() < 4 || std::memcmp(magic, "PK\x03\x04", 4) != 0)
      throw CheckpointError(path + ": not a PyTorch zip checkpoint (wrong magic; legacy torch.save files are not supported)");
  }
  const auto entry_sizes = check_zip_entries(path);
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
  // Every pickle opcode is at least one byte and makes at most one object, so the unpickled graph is bounded by the
  // pickle's size; the pickle itself is bounded here (a ResNet's is ~100 KB; tensor data lives in other records).
  constexpr size_t kMaxPickleBytes = size_t{256} << 20;
  for (const auto& [name, bytes] : entry_sizes)
    if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0 && bytes > kMaxPickleBytes)
      throw CheckpointError(path + ": " + name + " is larger than 256 MiB; refused");
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
}  // namespace

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
    check_zip_entries(path);
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
