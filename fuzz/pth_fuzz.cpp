// The .pth reader (zip + pickle + storages). The custom mutator keeps the zip's CRCs valid: it mutates the bytes of
// one stored entry (mostly data.pkl) with libFuzzer's mutator and recomputes that entry's CRC-32 in its local header
// and in the central directory, so mutations reach the unpickler instead of stopping at the zip layer. Sizes are
// kept (the entry is mutated in place), and one mutation in eight is a plain byte-level one on the whole file.
#include <zlib.h>

#include <cstring>
#include <vector>

#include "common.h"
#include "errors.h"
#include "io/checkpoint.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {
uint32_t rd32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }
uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
void wr32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

struct Entry {
  size_t local;  // local header offset
  size_t central;  // central directory record offset
  size_t data;  // first data byte
  size_t size;  // stored size
  bool pickle;
};

std::vector<Entry> stored_entries(uint8_t* d, size_t n) {
  std::vector<Entry> out;
  for (size_t p = 0; p + 46 <= n; ++p) {
    if (rd32(d + p) != 0x02014b50) continue;
    const size_t comp = rd32(d + p + 20), uncomp = rd32(d + p + 24), local = rd32(d + p + 42);
    const size_t name_len = rd16(d + p + 28);
    if (rd16(d + p + 10) != 0 || comp != uncomp || local + 30 > n || rd32(d + local) != 0x04034b50) continue;
    const size_t data = local + 30 + rd16(d + local + 26) + rd16(d + local + 28);
    if (data + comp > n || p + 46 + name_len > n) continue;
    const std::string name(reinterpret_cast<const char*>(d + p + 46), name_len);
    out.push_back({local, p, data, comp, name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0});
  }
  return out;
}
}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  auto entries = stored_entries(data, size);
  if (entries.empty() || seed % 8 == 0) return LLVMFuzzerMutate(data, size, max_size);
  const Entry* e = &entries[seed % entries.size()];
  for (const auto& x : entries)
    if (x.pickle && seed % 4 != 1) e = &x;
  if (e->size == 0) return size;
  std::vector<uint8_t> body(data + e->data, data + e->data + e->size);
  size_t n = LLVMFuzzerMutate(body.data(), body.size(), body.size());
  std::memcpy(data + e->data, body.data(), n);  // in place: shorter results leave the old tail
  const uint32_t crc = static_cast<uint32_t>(crc32(0, data + e->data, static_cast<uInt>(e->size)));
  wr32(data + e->local + 14, crc);
  wr32(data + e->central + 16, crc);
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::read_checkpoint_file(data, size, ".pth", tl::read_checkpoint_metadata, tl::read_checkpoint);
  return 0;
}
