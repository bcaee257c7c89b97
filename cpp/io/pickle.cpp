#include "io/pickle.h"

#include <unordered_set>

#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

#include "errors.h"

namespace tl {
namespace {

const std::map<std::string, torch::ScalarType>& storage_types() {
  static const std::map<std::string, torch::ScalarType> kTypes = {
      {"torch.FloatStorage", torch::kFloat32},   {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},    {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},      {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},     {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},      {"torch.BoolStorage", torch::kBool},
  };
  return kTypes;
}

// Globals a state-dict pickle may name. Everything else is refused before anything could be called.
const std::set<std::string>& allowed_globals() {
  static const std::set<std::string> kAllowed = [] {
    std::set<std::string> s = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                               "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
                               "torch._utils._rebuild_parameter_with_state", "builtins.set", "builtins.frozenset"};
    for (auto& kv : storage_types()) s.insert(kv.first);
    return s;
  }();
  return kAllowed;
}

constexpr size_t kMaxStack = 1 << 20;
constexpr int64_t kMaxDims = 64;

class Unpickler {
 public:
  Unpickler(const uint8_t* d, size_t n, const StorageResolver& r, const std::string& src)
      : p_(d), end_(d + n), resolve_(r), src_(src) {}

  // Frees what the unpickler made that the caller does not get: containers held by the memo or the stack that are
  // not reachable from `keep` (the result, or nothing after a failure). A hostile pickle can build a list that holds
  // itself and then fail, or drop it from the stack while the memo still names it: without this, that cycle leaks.
  void release_except(const PyRef& keep) {
    std::unordered_set<const PyValue*> kept;
    std::vector<const PyValue*> todo;
    if (keep) todo.push_back(keep.get());
    while (!todo.empty()) {
      const PyValue* v = todo.back();
      todo.pop_back();
      if (!kept.insert(v).second) continue;
      for (const auto& c : v->items) todo.push_back(c.get());
      for (const auto& kv : v->dict) {
        todo.push_back(kv.first.get());
        todo.push_back(kv.second.get());
      }
    }
    std::vector<PyRef> held(stack_.begin(), stack_.end());
    for (auto& kv : memo_) held.push_back(kv.second);
    stack_.clear();
    memo_.clear();
    release_graph(std::move(held), kept);
  }

  PyRef run() {
    while (true) {
      uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                          // PROTO
        case 0x95: take(8); break;                       // FRAME
        case '.': {                                      // STOP
          if (stack_.size() != 1) fail("malformed pickle: stack has " + std::to_string(stack_.size()) + " items at STOP");
          return stack_.back();
        }
        case '}': push(make(PyValue::Dict)); break;      // EMPTY_DICT
        case ']': push(make(PyValue::List)); break;      // EMPTY_LIST
        case ')': push(make(PyValue::Tuple)); break;     // EMPTY_TUPLE
        case 'N': push(make(PyValue::None)); break;
        case 0x88: push_bool(true); break;               // NEWTRUE
        case 0x89: push_bool(false); break;              // NEWFALSE
        case 'K': push_int(u8()); break;                 // BININT1
        case 'M': push_int(le<uint16_t>()); break;       // BININT2
        case 'J': push_int(le<int32_t>()); break;        // BININT
        case 0x8a: {                                     // LONG1
          size_t n = u8();
          push_int(long_bytes(n));
          break;
        }
        case 0x8b: {                                     // LONG4
          uint32_t n = le<uint32_t>();
          push_int(long_bytes(n));
          break;
        }
        case 'G': {                                      // BINFLOAT (big-endian double)
          const uint8_t* b = take(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | b[k];
          auto v = make(PyValue::Float);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case 'X': push_str(le<uint32_t>(), PyValue::Str); break;   // BINUNICODE
        case 0x8c: push_str(u8(), PyValue::Str); break;            // SHORT_BINUNICODE
        case 0x8d: push_str(le<uint64_t>(), PyValue::Str); break;  // BINUNICODE8
        case 'T': push_str(le<uint32_t>(), PyValue::Str); break;   // BINSTRING
        case 'U': push_str(u8(), PyValue::Str); break;             // SHORT_BINSTRING
        case 'B': push_str(le<uint32_t>(), PyValue::Bytes); break; // BINBYTES
        case 'C': push_str(u8(), PyValue::Bytes); break;           // SHORT_BINBYTES
        case 0x8e: push_str(le<uint64_t>(), PyValue::Bytes); break;  // BINBYTES8
        case '(': marks_.push_back(stack_.size()); break;          // MARK
        case 't': {                                                // TUPLE
          auto v = make(PyValue::Tuple);
          v->items = pop_mark();
          hold_all(*v, v->items);
          push(v);
          break;
        }
        case 0x85: tuple_n(1); break;
        case 0x86: tuple_n(2); break;
        case 0x87: tuple_n(3); break;
        case 'l': {                                                // LIST
          auto v = make(PyValue::List);
          v->items = pop_mark();
          hold_all(*v, v->items);
          push(v);
          break;
        }
        case 'd': {                                                // DICT
          auto v = make(PyValue::Dict);
          auto items = pop_mark();
          if (items.size() % 2) fail("malformed pickle: odd DICT item count");
          hold_all(*v, items);
          for (size_t k = 0; k < items.size(); k += 2) v->dict.emplace_back(items[k], items[k + 1]);
          push(v);
          break;
        }
        case 'a': {                                                // APPEND
          auto x = pop();
          auto list = top();
          if (list->kind != PyValue::List) fail("malformed pickle: APPEND to a non-list");
          hold(*list, *x);
          list->items.push_back(x);
          break;
        }
        case 'e': {                                                // APPENDS
          auto items = pop_mark();
          auto list = top();
          if (list->kind != PyValue::List) fail("malformed pickle: APPENDS to a non-list");
          hold_all(*list, items);
          list->items.insert(list->items.end(), items.begin(), items.end());
          break;
        }
        case 's': {                                                // SETITEM
          auto v = pop();
          auto k = pop();
          auto d = top();
          if (d->kind != PyValue::Dict) fail("malformed pickle: SETITEM on a non-dict");
          hold(*d, *k);
          hold(*d, *v);
          d->dict.emplace_back(k, v);
          break;
        }
        case 'u': {                                                // SETITEMS
          auto items = pop_mark();
          auto d = top();
          if (d->kind != PyValue::Dict || items.size() % 2) fail("malformed pickle: bad SETITEMS");
          hold_all(*d, items);
          for (size_t k = 0; k < items.size(); k += 2) d->dict.emplace_back(items[k], items[k + 1]);
          break;
        }
        case 0x8f: {                                               // EMPTY_SET
          push(make(PyValue::List));
          break;
        }
        case 0x90: {                                               // ADDITEMS
          auto items = pop_mark();
          auto s = top();
          if (s->kind != PyValue::List) fail("malformed pickle: ADDITEMS to a non-set");
          hold_all(*s, items);
          s->items.insert(s->items.end(), items.begin(), items.end());
          break;
        }
        case 'q': memo(u8()); break;                                // BINPUT
        case 'r': memo(le<uint32_t>()); break;                      // LONG_BINPUT
        case 0x94: memo(memo_.size()); break;                       // MEMOIZE
        case 'h': get(u8()); break;                                 // BINGET
        case 'j': get(le<uint32_t>()); break;                       // LONG_BINGET
        case '0': pop(); break;                                     // POP
        case '1': pop_mark(); break;                                // POP_MARK
        case '2': push(top()); break;                               // DUP
        case 'c': {                                                 // GLOBAL
          std::string module = line();
          std::string name = line();
          push_global(module, name);
          break;
        }
        case 0x93: {                                                // STACK_GLOBAL
          auto name = pop();
          auto module = pop();
          if (module->kind != PyValue::Str || name->kind != PyValue::Str) fail("malformed pickle: bad STACK_GLOBAL");
          push_global(module->s, name->s);
          break;
        }
        case 'Q': {                                                 // BINPERSID
          auto pid = pop();
          push(persistent(pid));
          break;
        }
        case 'R': {                                                 // REDUCE
          auto args = pop();
          auto fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 0x81: {                                                // NEWOBJ
          auto args = pop();
          auto cls = pop();
          push(reduce(cls, args));
          break;
        }
        case 'b': {                                                 // BUILD: state of OrderedDict (_metadata) or Parameter
          pop();
          top();
          break;
        }
        default: {
          char buf[8];
          std::snprintf(buf, sizeof buf, "0x%02x", op);
          fail(std::string("unsupported pickle opcode ") + buf);
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& msg) { throw CheckpointError(src_ + ": " + msg); }

  const uint8_t* take(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) fail("truncated pickle data");
    const uint8_t* r = p_;
    p_ += n;
    return r;
  }
  uint8_t u8() { return *take(1); }
  template <typename T>
  T le() {
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  int64_t long_bytes(size_t n) {
    if (n > 8) fail("integer too large in pickle");
    const uint8_t* b = take(n);
    if (n == 0) return 0;
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(b[k]) << (8 * k);
    if (n < 8 && (b[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign extend
    return static_cast<int64_t>(v);
  }
  std::string line() {
    const uint8_t* start = p_;
    while (p_ < end_ && *p_ != '\n') ++p_;
    if (p_ >= end_) fail("truncated pickle data");
    std::string s(reinterpret_cast<const char*>(start), p_ - start);
    ++p_;
    return s;
  }

  static PyRef make(PyValue::Kind k) {
    auto v = std::make_shared<PyValue>();
    v->kind = k;
    return v;
  }
  void push(PyRef v) {
    if (stack_.size() >= kMaxStack) fail("pickle stack too deep");
    stack_.push_back(std::move(v));
  }
  PyRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("malformed pickle: stack underflow");
    auto v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyRef top() {
    if (stack_.empty()) fail("malformed pickle: empty stack");
    return stack_.back();
  }
  std::vector<PyRef> pop_mark() {
    if (marks_.empty()) fail("malformed pickle: missing MARK");
    size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) fail("malformed pickle: bad MARK");
    std::vector<PyRef> items(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return items;
  }
  // `child` becomes part of `parent`: nesting depth checked as it grows (iterative code elsewhere never recurses
  // deeper than this, and destroying a nested value recurses at most this far).
  void hold(PyValue& parent, const PyValue& child) {
    if (child.depth + 1 > parent.depth) parent.depth = child.depth + 1;
    if (parent.depth > kMaxPickleDepth) fail("pickle nests containers deeper than " + std::to_string(kMaxPickleDepth) + " levels");
  }
  void hold_all(PyValue& parent, const std::vector<PyRef>& children) {
    for (const auto& c : children) hold(parent, *c);
  }
  void tuple_n(size_t n) {
    auto v = make(PyValue::Tuple);
    v->items.resize(n);
    for (size_t k = n; k-- > 0;) v->items[k] = pop();
    hold_all(*v, v->items);
    push(v);
  }
  void push_bool(bool b) {
    auto v = make(PyValue::Bool);
    v->b = b;
    push(v);
  }
  void push_int(int64_t i) {
    auto v = make(PyValue::Int);
    v->i = i;
    push(v);
  }
  void push_str(uint64_t n, PyValue::Kind k) {
    if (n > static_cast<uint64_t>(end_ - p_)) fail("truncated pickle data (string of " + std::to_string(n) + " bytes)");
    auto v = make(k);
    const uint8_t* b = take(n);
    v->s.assign(reinterpret_cast<const char*>(b), n);
    push(v);
  }
  void memo(size_t idx) {
    if (idx > (1u << 26)) fail("pickle memo index out of range");
    memo_[idx] = top();
  }
  void get(size_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("pickle memo key " + std::to_string(idx) + " not found");
    push(it->second);
  }
  void push_global(const std::string& module, const std::string& name) {
    std::string full = module + "." + name;
    if (!allowed_globals().count(full))
      fail("refused to load global '" + full + "': only tensors and plain containers are allowed in a checkpoint");
    auto v = make(PyValue::Global);
    v->s = full;
    push(v);
  }

  PyRef persistent(const PyRef& pid) {
    if (pid->kind != PyValue::Tuple || pid->items.size() < 5 || pid->items[0]->kind != PyValue::Str ||
        pid->items[0]->s != "storage")
      fail("unsupported persistent id in pickle");
    const auto& type = pid->items[1];
    const auto& key = pid->items[2];
    const auto& numel = pid->items[4];
    torch::ScalarType dtype;
    if (type->kind != PyValue::Global || !storage_dtype(type->s, &dtype)) fail("unknown storage type in pickle");
    if (key->kind != PyValue::Str || numel->kind != PyValue::Int || numel->i < 0) fail("malformed storage reference");
    auto cached = storages_.find(key->s);
    if (cached != storages_.end()) return cached->second;
    auto v = make(PyValue::Storage);
    v->tensor = resolve_(key->s, dtype, numel->i);
    storages_[key->s] = v;
    return v;
  }

  std::vector<int64_t> int_tuple(const PyRef& t, const char* what) {
    if (t->kind != PyValue::Tuple || static_cast<int64_t>(t->items.size()) > kMaxDims)
      fail(std::string("malformed tensor ") + what);
    std::vector<int64_t> out;
    for (auto& x : t->items) {
      if (x->kind != PyValue::Int || x->i < 0) fail(std::string("malformed tensor ") + what);
      out.push_back(x->i);
    }
    return out;
  }

  PyRef rebuild_tensor(const std::vector<PyRef>& a) {
    if (a.size() < 4 || a[0]->kind != PyValue::Storage || a[1]->kind != PyValue::Int)
      fail("malformed _rebuild_tensor_v2 arguments");
    const torch::Tensor& storage = a[0]->tensor;
    int64_t offset = a[1]->i;
    auto size = int_tuple(a[2], "size");
    auto stride = int_tuple(a[3], "stride");
    if (size.size() != stride.size()) fail("tensor size and stride have different lengths");
    // Bounds: the furthest element must lie inside the storage. Checked arithmetic: sizes and strides come from the
    // file, and (size - 1) * stride overflows int64 long before any limit on one of them would.
    if (offset < 0) fail("negative tensor storage offset");
    int64_t numel = 1, last = offset;
    for (size_t k = 0; k < size.size(); ++k) {
      if (size[k] < 0 || stride[k] < 0) fail("negative tensor size or stride");
      int64_t reach = 0;
      if (__builtin_mul_overflow(numel, size[k], &numel) || numel > (int64_t(1) << 40)) fail("tensor too large");
      if (size[k] > 0 && (__builtin_mul_overflow(size[k] - 1, stride[k], &reach) || __builtin_add_overflow(last, reach, &last)))
        fail("tensor storage offset/stride out of bounds (overflow)");
    }
    if (numel > 0 && last >= storage.numel())
      fail("tensor storage offset/stride out of bounds (storage has " + std::to_string(storage.numel()) +
           " elements, tensor needs " + std::to_string(last + 1) + ")");
    // Overlapping strides (stride 0) would let a few bytes stand for a huge logical tensor that later copies expand.
    if (numel > storage.numel())
      fail("tensor of " + std::to_string(numel) + " elements views a storage of " + std::to_string(storage.numel()) +
           " (overlapping strides are not supported)");
    auto v = make(PyValue::Tensor);
    v->tensor = numel == 0 ? torch::empty(size, storage.options()) : storage.as_strided(size, stride, offset);
    return v;
  }

  PyRef reduce(const PyRef& fn, const PyRef& args) {
    if (fn->kind != PyValue::Global) fail("malformed pickle: REDUCE on a non-callable");
    if (args->kind != PyValue::Tuple) fail("malformed pickle: REDUCE arguments are not a tuple");
    const std::string& name = fn->s;
    if (name == "collections.OrderedDict") {
      auto d = make(PyValue::Dict);
      if (!args->items.empty()) fail("OrderedDict with arguments is not supported");
      return d;
    }
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor")
      return rebuild_tensor(args->items);
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      if (args->items.empty() || args->items[0]->kind != PyValue::Tensor) fail("malformed _rebuild_parameter");
      return args->items[0];
    }
    if (name == "builtins.set" || name == "builtins.frozenset") {
      auto l = make(PyValue::List);
      if (!args->items.empty() && args->items[0]->kind == PyValue::List) {
        l->items = args->items[0]->items;
        l->depth = args->items[0]->depth;
      }
      return l;
    }
    fail("refused to call '" + name + "'");
  }

  const uint8_t* p_;
  const uint8_t* end_;
  const StorageResolver& resolve_;
  std::string src_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<size_t, PyRef> memo_;
  std::unordered_map<std::string, PyRef> storages_;
};

// --- writer -------------------------------------------------------------------------------------------------------

void put_str(std::string& o, const std::string& s) {
  o += 'X';
  uint32_t n = static_cast<uint32_t>(s.size());
  o.append(reinterpret_cast<const char*>(&n), 4);
  o += s;
}
void put_int(std::string& o, int64_t v) {
  if (v >= 0 && v < 256) {
    o += 'K';
    o += static_cast<char>(v);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    o += 'J';
    int32_t x = static_cast<int32_t>(v);
    o.append(reinterpret_cast<const char*>(&x), 4);
  } else {
    o += static_cast<char>(0x8a);
    o += static_cast<char>(8);
    o.append(reinterpret_cast<const char*>(&v), 8);
  }
}
void put_global(std::string& o, const std::string& module, const std::string& name) {
  o += 'c';
  o += module + "\n" + name + "\n";
}

}  // namespace

bool storage_dtype(const std::string& global, torch::ScalarType* out) {
  auto it = storage_types().find(global);
  if (it == storage_types().end()) return false;
  *out = it->second;
  return true;
}

std::string storage_name(torch::ScalarType dtype) {
  for (auto& kv : storage_types())
    if (kv.second == dtype) return kv.first.substr(6);  // strip "torch."
  throw CheckpointError(std::string("cannot save tensors of dtype ") + c10::toString(dtype));
}

PyRef unpickle(const uint8_t* data, size_t size, const StorageResolver& resolve, const std::string& source) {
  Unpickler u(data, size, resolve, source);
  PyRef root;
  try {
    root = u.run();
  } catch (...) {
    u.release_except(nullptr);
    throw;
  }
  u.release_except(root);
  return root;
}

std::string pickle_state_dict(const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::string o("\x80\x02", 2);
  put_global(o, "collections", "OrderedDict");
  o += ")R(";
  size_t index = 0;
  for (const auto& kv : tensors) {
    const auto& t = kv.second;
    put_str(o, kv.first);
    put_global(o, "torch._utils", "_rebuild_tensor_v2");
    o += "((";  // args tuple, then the persistent id tuple
    put_str(o, "storage");
    put_global(o, "torch", storage_name(t.scalar_type()));
    put_str(o, std::to_string(index++));
    put_str(o, "cpu");
    put_int(o, t.numel());
    o += "tQ";
    put_int(o, 0);  // storage offset
    o += '(';
    for (auto s : t.sizes()) put_int(o, s);
    o += "t(";
    // contiguous strides
    std::vector<int64_t> strides(t.dim());
    int64_t acc = 1;
    for (int64_t d = t.dim() - 1; d >= 0; --d) {
      strides[d] = acc;
      acc *= std::max<int64_t>(t.size(d), 1);
    }
    for (auto s : strides) put_int(o, s);
    o += "t";
    o += static_cast<char>(0x89);  // requires_grad False
    put_global(o, "collections", "OrderedDict");
    o += ")RtR";  // backward hooks, close args tuple, REDUCE
  }
  o += "u.";
  return o;
}

void release_pickle(const PyRef& root) {
  if (root) release_graph({root}, {});
}

void release_graph(std::vector<PyRef> todo, const std::unordered_set<const PyValue*>& keep) {
  std::unordered_set<const PyValue*> seen;
  while (!todo.empty()) {
    PyRef v = std::move(todo.back());
    todo.pop_back();
    if (!v || keep.count(v.get()) || !seen.insert(v.get()).second) continue;
    for (auto& c : v->items) todo.push_back(std::move(c));
    for (auto& kv : v->dict) {
      todo.push_back(std::move(kv.first));
      todo.push_back(std::move(kv.second));
    }
    v->items.clear();
    v->dict.clear();
  }
}

}  // namespace tl
