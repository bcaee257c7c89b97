// The only place that knows libtorch 1.13 (Debian's libtorch-dev) from 2.x (PyPI's torch, the official zips).
// Everything else calls these helpers.
#pragma once
#include <ATen/autocast_mode.h>
#include <c10/core/Allocator.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <optional>
#include <sstream>
#include <stdexcept>
#include <vector>
#include <string>
#include <type_traits>

#define TL_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace tl::compat {

// Autocast state of the calling thread for one device type (2.4 replaced the per-device setters).
inline void set_autocast(c10::DeviceType type, bool enabled, at::ScalarType dtype) {
#if TL_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(type, enabled);
  if (enabled) at::autocast::set_autocast_dtype(type, dtype);
#else
  if (type == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(enabled);
    if (enabled) at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    if (enabled) at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

// The calling thread's autocast dtype for one device type, or nullopt when autocast is off there.
inline std::optional<at::ScalarType> autocast_dtype(c10::DeviceType type) {
#if TL_TORCH_AT_LEAST(2, 4)
  if (!at::autocast::is_autocast_enabled(type)) return std::nullopt;
  return at::autocast::get_autocast_dtype(type);
#else
  if (type == c10::DeviceType::CUDA) {
    if (!at::autocast::is_enabled()) return std::nullopt;
    return at::autocast::get_autocast_gpu_dtype();
  }
  if (!at::autocast::is_cpu_enabled()) return std::nullopt;
  return at::autocast::get_autocast_cpu_dtype();
#endif
}

// Key of a parameter in torch::optim::Optimizer::state(): the TensorImpl address printed as a string in 1.13, the
// address itself in 2.x. Deduced from the map's key type rather than from a version number.
using OptimizerStateKey = std::remove_reference_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;

template <class Key = OptimizerStateKey>
Key optimizer_state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;  // what c10::guts::to_string did
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

// Integer padding of a convolution's options: a c10::variant in 1.13, a std::variant in 2.x (`using std::get` lets
// argument-dependent lookup find c10::get for the former). Throws for 'valid' / 'same'.
template <size_t D, class Options>
std::vector<int64_t> conv_padding(const Options& o) {
  using std::get;
  const auto& p = o.padding();
  if (p.index() != 0) throw std::invalid_argument("convolution with string padding");
  const auto& a = get<0>(p);
  return {a->begin(), a->end()};
}

}  // namespace tl::compat

// c10::Allocator::allocate lost its const in 2.3, which also added the pure virtual copy_data.
#if TL_TORCH_AT_LEAST(2, 3)
#define TL_ALLOCATE_CONST
#define TL_ALLOCATOR_COPY_DATA                                                     \
  void copy_data(void* dest, const void* src, std::size_t count) const override { \
    default_copy_data(dest, src, count);                                           \
  }
#else
#define TL_ALLOCATE_CONST const
#define TL_ALLOCATOR_COPY_DATA
#endif
