// Device strings, availability, thread settings and build information.
#pragma once
#include <torch/torch.h>
#include <string>
#include <vector>

namespace tl {

// Parses "cpu", "cuda", "cuda:N"; throws std::invalid_argument listing the available devices when unusable.
torch::Device parse_device(const std::string& spec);
std::vector<std::string> available_devices();
bool cuda_available();
int cuda_device_count();

struct CudaDeviceInfo {
  std::string device;  // "cuda:N"
  std::string name;    // e.g. "NVIDIA H200"
  int64_t total_memory = 0;
  int major = 0, minor = 0;  // compute capability
};
// Visible GPUs with their names and memory (empty without CUDA).
std::vector<CudaDeviceInfo> cuda_devices();
// cuDNN autotuning (torch.backends.cudnn.benchmark): picks the fastest convolution algorithm per input shape.
void set_cudnn_benchmark(bool on);
bool cudnn_benchmark();
// TensorFloat-32 in cuDNN convolutions and cuBLAS matrix products (fp32 inputs, 10-bit mantissa products on
// Ampere and later). PyTorch's defaults: on for convolutions, off for matmuls.
void set_allow_tf32(bool on);
bool allow_tf32();

// Intra-op threads for tensor work. The value is process-wide; apply_threads() makes the calling
// (worker) thread use it, since OpenMP keeps the setting per thread.
void set_num_threads(int n);
int get_num_threads();
void apply_threads();
// Lowers the calling worker thread's scheduling priority to compute_nice(), so the JS thread stays responsive.
void lower_thread_priority();
// Nice value (0..19) that lower_thread_priority() gives native compute threads.
void set_compute_nice(int nice);
int compute_nice();

bool cpu_has_bf16();
bool cpu_has_avx512();
std::string torch_version();
// Which libtorch this build was compiled against: "system" (find_package, e.g. Debian's), "pypi", "custom" (a folder).
std::string libtorch_variant();
bool built_with_cuda();

}  // namespace tl
