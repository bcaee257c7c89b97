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

// Intra-op threads for tensor work. The value is process-wide; apply_threads() makes the calling
// (worker) thread use it, since OpenMP keeps the setting per thread.
void set_num_threads(int n);
int get_num_threads();
void apply_threads();
// Lowers the calling worker thread's scheduling priority once, so the JS thread stays responsive.
void lower_thread_priority();

bool cpu_has_bf16();
bool cpu_has_avx512();
std::string torch_version();
bool built_with_cuda();

}  // namespace tl
