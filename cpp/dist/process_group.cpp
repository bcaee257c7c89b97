#include "dist/process_group.h"

#include <chrono>

namespace tl {

#ifdef TL_HAVE_NCCL
constexpr bool kHaveNccl = true;
#else
constexpr bool kHaveNccl = false;
#endif

std::vector<std::string> ProcessGroup::backends() {
  std::vector<std::string> out;
#if defined(TL_HAVE_C10D) && defined(USE_C10D_GLOO)
  out.push_back("gloo");
#endif
  if (kHaveNccl) out.push_back("nccl");
  return out;
}

std::string ProcessGroup::choose_backend(const std::string& requested, const torch::Device& device) {
  if (requested == "gloo") return "gloo";
  if (requested == "auto") return device.is_cuda() && kHaveNccl ? "nccl" : "gloo";  // a build without Gloo says so at set-up
  if (requested != "nccl") throw std::invalid_argument("option distributed.backend must be 'auto', 'gloo' or 'nccl', got '" + requested + "'");
  if (!kHaveNccl)
    throw std::invalid_argument(
        "option distributed.backend 'nccl' needs a CUDA build with NCCL (PyPI's libtorch: TORCH_RESNET_TL_LIBTORCH=pypi); this build "
        "has Gloo only");
  if (!device.is_cuda()) throw std::invalid_argument("option distributed.backend 'nccl' needs the model on a CUDA device; it is on " + device.str());
  return "nccl";
}

}  // namespace tl

#ifdef TL_HAVE_C10D
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include <deque>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef TL_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace tl {

// Heartbeats: every rank bumps its counter in the rendezvous store (through its own client, off the training
// thread) every kHeartbeatMs. When a collective fails, the counters that stopped moving name the lost ranks.
constexpr int kHeartbeatMs = 500;

struct ProcessGroup::Impl {
  using WorkPtr = c10::intrusive_ptr<c10d::Work>;
  c10::intrusive_ptr<c10d::TCPStore> store;
#ifdef USE_C10D_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#ifdef TL_HAVE_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  std::deque<WorkPtr> started;  // start_sum's collectives in flight, oldest first
  WorkPtr allreduce(std::vector<at::Tensor>& t) {
#ifdef TL_HAVE_NCCL
    if (nccl) return nccl->allreduce(t);
#endif
#ifdef USE_C10D_GLOO
    if (gloo) return gloo->allreduce(t);
#endif
    throw std::logic_error("no process group");
  }
  WorkPtr broadcast(std::vector<at::Tensor>& t, const c10d::BroadcastOptions& o) {
#ifdef TL_HAVE_NCCL
    if (nccl) return nccl->broadcast(t, o);
#endif
#ifdef USE_C10D_GLOO
    if (gloo) return gloo->broadcast(t, o);
#endif
    throw std::logic_error("no process group");
  }
  c10::intrusive_ptr<c10d::TCPStore> beat_store;
  std::thread beat;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::string beat_error;  // why there are no heartbeats
  ~Impl() {
    {
      std::lock_guard<std::mutex> l(mu);
      stop = true;
    }
    cv.notify_all();
    if (beat.joinable()) beat.join();
  }
};

namespace {
std::string beat_key(int rank) { return "tl/heartbeat/" + std::to_string(rank); }
}  // namespace

namespace {

std::string where(const DistConfig& c) {
  return "rank " + std::to_string(c.rank) + " of " + std::to_string(c.world_size) + " (rendezvous " + c.master_addr + ":" +
         std::to_string(c.master_port) + ")";
}

// The first line of a c10d/Gloo message (they carry C++ backtraces below it).
std::string first_line(const std::exception& e) {
  std::string m = e.what();
  auto nl = m.find('\n');
  return nl == std::string::npos ? m : m.substr(0, nl);
}

// The local address this host uses to reach `host` (the routing table's choice: a UDP socket "connected" there sends
// nothing), so each rank binds where its peers can reach it, on whichever network the rendezvous host is.
[[maybe_unused]] std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) return "";
  std::string out;
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd >= 0) {
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    if (::connect(fd, res->ai_addr, res->ai_addrlen) == 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      char buf[INET_ADDRSTRLEN] = {0};
      if (inet_ntop(AF_INET, &local.sin_addr, buf, sizeof(buf))) out = buf;
    }
    ::close(fd);
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace

ProcessGroup::ProcessGroup(const DistConfig& cfg) : impl_(std::make_unique<Impl>()), rank_(cfg.rank), world_(cfg.world_size), timeout_ms_(cfg.timeout_ms) {
  if (cfg.world_size < 1) throw std::invalid_argument("option worldSize must be >= 1");
  if (cfg.rank < 0 || cfg.rank >= cfg.world_size)
    throw std::invalid_argument("option rank must be in [0, " + std::to_string(cfg.world_size) + "), got " + std::to_string(cfg.rank));
  if (cfg.master_addr.empty()) throw std::invalid_argument("option masterAddr must name the rank-0 host (MASTER_ADDR)");
  if (cfg.master_port < 1 || cfg.master_port > 65535) throw std::invalid_argument("option masterPort must be a port number (MASTER_PORT)");
  if (cfg.timeout_ms < 1) throw std::invalid_argument("option timeout must be >= 1 ms");
  const auto timeout = std::chrono::milliseconds(cfg.timeout_ms);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(cfg.master_port);
    so.isServer = cfg.rank == 0;
    so.numWorkers = cfg.world_size;
    so.waitWorkers = true;
    so.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(cfg.master_addr, so);
  } catch (const std::exception& e) {
    throw DistributedError("rendezvous failed for " + where(cfg) + ": " + first_line(e) +
                           (cfg.rank == 0 ? " (is the port in use?)" : " (is rank 0 running and MASTER_ADDR/MASTER_PORT right?)"));
  }
  try {
    if (cfg.backend == "nccl") {
#ifdef TL_HAVE_NCCL
      collective_device_ = torch::Device(cfg.device);
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, cfg.rank, cfg.world_size, opts);
#else
      throw std::invalid_argument("this build has no NCCL");
#endif
    } else if (cfg.backend == "gloo") {
#ifdef USE_C10D_GLOO
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      // this host's address as the peers reach it: GLOO_SOCKET_IFNAME's interface when set (as torch.distributed),
      // else the address the routing table uses towards the rendezvous host (loopback for a single-host job)
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname && *ifname) {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else {
        const std::string local = local_address_towards(cfg.master_addr, cfg.master_port);
        opts->devices.push_back(local.empty() ? c10d::ProcessGroupGloo::createDefaultDevice() : c10d::ProcessGroupGloo::createDeviceForHostname(local));
      }
      opts->threads = 2;
      impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, cfg.rank, cfg.world_size, opts);
#else
      throw std::invalid_argument("this build has no Gloo (libgloo-dev's headers were missing at build time): use backend 'nccl'");
#endif
    } else {
      throw std::invalid_argument("unknown backend '" + cfg.backend + "'");
    }
  } catch (const std::exception& e) {
    throw DistributedError(cfg.backend + " process group set-up failed for " + where(cfg) + ": " + first_line(e) +
                           " (world sizes that differ between ranks, or a rank that joined too late, end here)");
  }
  if (cfg.world_size > 1) {
    try {
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(cfg.master_port);
      so.isServer = false;
      so.waitWorkers = false;
      so.timeout = std::chrono::milliseconds(std::min<int64_t>(cfg.timeout_ms, 5000));
      impl_->beat_store = c10::make_intrusive<c10d::TCPStore>(cfg.master_addr, so);
      impl_->beat_store->add(beat_key(cfg.rank), 1);
      Impl* impl = impl_.get();
      const std::string key = beat_key(cfg.rank);
      impl_->beat = std::thread([impl, key] {
        std::unique_lock<std::mutex> l(impl->mu);
        while (!impl->cv.wait_for(l, std::chrono::milliseconds(kHeartbeatMs), [impl] { return impl->stop; })) {
          try {
            impl->beat_store->add(key, 1);
          } catch (...) {
            return;  // the store is gone (rank 0 left): the collectives will say so
          }
        }
      });
    } catch (const std::exception& e) {
      // no heartbeats: failures are reported without naming the lost rank, and say why
      impl_->beat_store.reset();
      impl_->beat_error = first_line(e);
    }
  }
}

std::string ProcessGroup::lost_ranks() const {
  if (!impl_->beat_store) return impl_->beat_error.empty() ? "" : "a rank left (heartbeats unavailable: " + impl_->beat_error + ")";
  try {
    std::vector<int64_t> before(static_cast<size_t>(world_));
    for (int r = 0; r < world_; ++r) before[static_cast<size_t>(r)] = impl_->beat_store->add(beat_key(r), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(4 * kHeartbeatMs));
    std::string lost;
    for (int r = 0; r < world_; ++r)
      if (r != rank_ && impl_->beat_store->add(beat_key(r), 0) == before[static_cast<size_t>(r)])
        lost += (lost.empty() ? "" : ", ") + std::to_string(r);
    if (lost.empty()) return "";
    return (lost.find(',') == std::string::npos ? "rank " : "ranks ") + lost + " stopped answering (no heartbeat for " +
           std::to_string(4 * kHeartbeatMs) + " ms)";
  } catch (const std::exception&) {
    return "rank 0 is gone (the rendezvous store it served does not answer)";
  }
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::fail(const char* what, const std::exception& e) const {
  const std::string lost = lost_ranks();
  throw DistributedError(std::string(what) + " failed on rank " + std::to_string(rank_) + " of " + std::to_string(world_) + ": " +
                         (lost.empty() ? "a rank left or did not answer within " + std::to_string(timeout_ms_) + " ms" : lost) + " (" +
                         first_line(e) + ")");
}

void ProcessGroup::start_sum(const torch::Tensor& flat) {
  if (world_ == 1) return;
  std::vector<at::Tensor> t{flat};
  try {
    impl_->started.push_back(impl_->allreduce(t));
  } catch (const std::exception& e) {
    impl_->started.clear();
    fail("gradient all-reduce", e);
  }
}

void ProcessGroup::wait_started(const char* what) {
  while (!impl_->started.empty()) {
    auto w = impl_->started.front();
    impl_->started.pop_front();
    try {
      w->wait(std::chrono::milliseconds(timeout_ms_));
    } catch (const std::exception& e) {
      impl_->started.clear();
      fail(what, e);
    }
  }
}

template <class Op>
void ProcessGroup::bucketed(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes, const char* what, double scale, Op op) {
  size_t i = 0;
  while (i < tensors.size()) {
    // a bucket: consecutive tensors of one dtype up to bucket_bytes (at least one tensor)
    size_t j = i;
    int64_t bytes = 0;
    const auto dtype = tensors[i].scalar_type();
    while (j < tensors.size() && tensors[j].scalar_type() == dtype &&
           (j == i || bytes + tensors[j].numel() * tensors[j].element_size() <= bucket_bytes)) {
      bytes += tensors[j].numel() * tensors[j].element_size();
      ++j;
    }
    torch::NoGradGuard ng;
    // a lone contiguous CPU tensor is reduced in place; several are flattened into one buffer and copied back
    const bool in_place = j == i + 1 && tensors[i].device() == collective_device_ && tensors[i].is_contiguous();
    std::vector<torch::Tensor> flat;
    if (in_place) {
      flat.push_back(tensors[i].detach().view({-1}));
    } else {
      std::vector<torch::Tensor> parts;
      for (size_t k = i; k < j; ++k) parts.push_back(tensors[k].detach().reshape({-1}).to(collective_device_));
      flat.push_back(torch::cat(parts));
    }
    try {
      op(flat)->wait(std::chrono::milliseconds(timeout_ms_));
    } catch (const std::exception& e) {
      fail(what, e);
    }
    if (scale != 1.0) flat[0].mul_(scale);
    if (!in_place) {
      int64_t off = 0;
      for (size_t k = i; k < j; ++k) {
        const int64_t n = tensors[k].numel();
        tensors[k].copy_(flat[0].narrow(0, off, n).view(tensors[k].sizes()));
        off += n;
      }
    }
    i = j;
  }
}

void ProcessGroup::broadcast(const std::vector<torch::Tensor>& tensors, int root, int64_t bucket_bytes) {
  if (world_ == 1) return;
  c10d::BroadcastOptions o;
  o.rootRank = root;
  bucketed(tensors, bucket_bytes, "broadcast", 1.0, [&](std::vector<at::Tensor>& t) { return impl_->broadcast(t, o); });
}

void ProcessGroup::allreduce_mean(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes) {
  if (world_ == 1) return;
  bucketed(tensors, bucket_bytes, "gradient all-reduce", 1.0 / world_, [&](std::vector<at::Tensor>& t) { return impl_->allreduce(t); });
}

std::vector<double> ProcessGroup::allreduce_sum(const std::vector<double>& values) {
  if (world_ == 1 || values.empty()) return values;
  auto t = torch::tensor(values, torch::kFloat64);
  std::vector<torch::Tensor> ts{t};
  bucketed(ts, INT64_MAX, "metric all-reduce", 1.0, [&](std::vector<at::Tensor>& x) { return impl_->allreduce(x); });
  auto acc = t.accessor<double, 1>();
  std::vector<double> out(values.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = acc[static_cast<int64_t>(i)];
  return out;
}

}  // namespace tl

#else  // built without c10d

namespace tl {
struct ProcessGroup::Impl {};
ProcessGroup::ProcessGroup(const DistConfig&) {
  throw DistributedError("this build of torch-resnet-tl has no distributed training: Gloo's headers (libgloo-dev) were missing at build time");
}
ProcessGroup::~ProcessGroup() = default;
void ProcessGroup::broadcast(const std::vector<torch::Tensor>&, int, int64_t) {}
void ProcessGroup::allreduce_mean(const std::vector<torch::Tensor>&, int64_t) {}
void ProcessGroup::start_sum(const torch::Tensor&) {}
void ProcessGroup::wait_started(const char*) {}
std::vector<double> ProcessGroup::allreduce_sum(const std::vector<double>& v) { return v; }
std::string ProcessGroup::lost_ranks() const { return ""; }
}  // namespace tl

#endif
