#include "device.h"
#include "errors.h"

#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <torch/version.h>
#ifdef TL_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include <atomic>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace tl {
namespace {

std::atomic<int> g_threads{0};
// nice value of native compute threads: lib/ sets it when it loads the addon (COMPUTE_NICE_DEFAULT, the env var)
std::atomic<int> g_nice{0};

std::string cpu_flags() {
  static const std::string flags = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) == 0) return " " + line + " ";
    }
    return std::string();
  }();
  return flags;
}

}  // namespace

bool cuda_available() { return torch::cuda::is_available(); }
int cuda_device_count() { return cuda_available() ? static_cast<int>(torch::cuda::device_count()) : 0; }

std::vector<std::string> available_devices() {
  std::vector<std::string> out{"cpu"};
  for (int i = 0; i < cuda_device_count(); ++i) out.push_back("cuda:" + std::to_string(i));
  return out;
}

torch::Device parse_device(const std::string& spec) {
  auto list = [] {
    std::string s;
    for (auto& d : available_devices()) s += (s.empty() ? "" : ", ") + d;
    return s;
  };
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (spec.size() > 5) {
      std::string num = spec.substr(5);
      if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos || num.size() > 3)
        throw DeviceError("invalid device '" + spec + "'; available devices: " + list());
      index = std::stoi(num);
    }
    if (index >= cuda_device_count())
      throw DeviceError("device '" + spec + "' is not available; available devices: " + list());
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw DeviceError("invalid device '" + spec + "'; available devices: " + list());
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("threads must be >= 1");
  g_threads = n;
  at::set_num_threads(n);
}

int get_num_threads() {
  int n = g_threads.load();
  if (n <= 0) {
    unsigned hc = std::thread::hardware_concurrency();
    n = hc == 0 ? 1 : static_cast<int>(hc);
    g_threads = n;
  }
  return n;
}

void set_compute_nice(int nice) {
  if (nice < 0 || nice > 19) throw std::invalid_argument("compute nice must be in 0..19");
  g_nice = nice;
}

int compute_nice() { return g_nice.load(); }

void lower_thread_priority() {
#ifdef __linux__
  // Background compute yields to the JS thread: this thread (and the OpenMP team it creates from now on) at the
  // compute nice value. A thread is only ever lowered: raising its priority back needs CAP_SYS_NICE.
  thread_local int applied = -1;
  const int want = g_nice.load();
  if (applied == want) return;
  applied = want;
  const int tid = static_cast<int>(::syscall(SYS_gettid));
  if (::getpriority(PRIO_PROCESS, tid) < want) ::setpriority(PRIO_PROCESS, tid, want);
#endif
}

void apply_threads() {
  lower_thread_priority();
  int n = get_num_threads();
  if (at::get_num_threads() != n) at::set_num_threads(n);
}

bool cpu_has_bf16() {
  auto f = cpu_flags();
  return f.find(" avx512_bf16 ") != std::string::npos || f.find(" amx_bf16 ") != std::string::npos;
}
bool cpu_has_avx512() { return cpu_flags().find(" avx512f ") != std::string::npos; }

std::string torch_version() { return TORCH_VERSION; }
std::string libtorch_variant() { return TL_LIBTORCH_VARIANT; }

std::vector<CudaDeviceInfo> cuda_devices() {
  std::vector<CudaDeviceInfo> out;
#ifdef TL_WITH_CUDA
  for (int i = 0; i < cuda_device_count(); ++i) {
    const cudaDeviceProp* p = at::cuda::getDeviceProperties(i);
    out.push_back(CudaDeviceInfo{"cuda:" + std::to_string(i), p->name, static_cast<int64_t>(p->totalGlobalMem), p->major, p->minor});
  }
#endif
  return out;
}

void set_cudnn_benchmark(bool on) { at::globalContext().setBenchmarkCuDNN(on); }
bool cudnn_benchmark() { return at::globalContext().benchmarkCuDNN(); }
void set_allow_tf32(bool on) {
  at::globalContext().setAllowTF32CuDNN(on);
  at::globalContext().setAllowTF32CuBLAS(on);
}
bool allow_tf32() { return at::globalContext().allowTF32CuDNN(); }

bool built_with_cuda() {
#ifdef TL_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace tl
