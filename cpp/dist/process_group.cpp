#include "dist/process_group.h"

#include <chrono>

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

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace tl {

// Heartbeats: every rank bumps its counter in the rendezvous store (through its own client, off the training
// thread) every kHeartbeatMs. When a collective fails, the counters that stopped moving name the lost ranks.
constexpr int kHeartbeatMs = 500;

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
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
std::string local_address_towards(const std::string& host, int port) {
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
  } catch (const std::exception& e) {
    throw DistributedError("process group set-up failed for " + where(cfg) + ": " + first_line(e) +
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
    const bool in_place = j == i + 1 && tensors[i].device().is_cpu() && tensors[i].is_contiguous();
    std::vector<torch::Tensor> flat;
    if (in_place) {
      flat.push_back(tensors[i].detach().view({-1}));
    } else {
      std::vector<torch::Tensor> parts;
      for (size_t k = i; k < j; ++k) parts.push_back(tensors[k].detach().reshape({-1}).to(torch::kCPU));
      flat.push_back(torch::cat(parts));
    }
    try {
      op(flat)->wait(std::chrono::milliseconds(timeout_ms_));
    } catch (const std::exception& e) {
      const std::string lost = lost_ranks();
      throw DistributedError(std::string(what) + " failed on rank " + std::to_string(rank_) + " of " + std::to_string(world_) + ": " +
                             (lost.empty() ? "a rank left or did not answer within " + std::to_string(timeout_ms_) + " ms" : lost) + " (" +
                             first_line(e) + ")");
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
  bucketed(tensors, bucket_bytes, "broadcast", 1.0, [&](std::vector<at::Tensor>& t) { return impl_->gloo->broadcast(t, o); });
}

void ProcessGroup::allreduce_mean(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes) {
  if (world_ == 1) return;
  bucketed(tensors, bucket_bytes, "gradient all-reduce", 1.0 / world_, [&](std::vector<at::Tensor>& t) { return impl_->gloo->allreduce(t); });
}

std::vector<double> ProcessGroup::allreduce_sum(const std::vector<double>& values) {
  if (world_ == 1 || values.empty()) return values;
  auto t = torch::tensor(values, torch::kFloat64);
  std::vector<torch::Tensor> ts{t};
  bucketed(ts, INT64_MAX, "metric all-reduce", 1.0, [&](std::vector<at::Tensor>& x) { return impl_->gloo->allreduce(x); });
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
std::vector<double> ProcessGroup::allreduce_sum(const std::vector<double>& v) { return v; }
std::string ProcessGroup::lost_ranks() const { return ""; }
}  // namespace tl

#endif
