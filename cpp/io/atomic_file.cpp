#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "errors.h"

namespace tl {

void write_atomic(const std::string& path, const std::function<void(const Sink&)>& write) {
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw CheckpointError(path + ": cannot create file: " + std::strerror(errno));
  try {
    Sink sink = [&](const void* data, size_t n) {
      if (n && std::fwrite(data, 1, n, f) != n) throw CheckpointError(path + ": write failed: " + std::strerror(errno));
    };
    write(sink);
    if (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0)
      throw CheckpointError(path + ": write failed: " + std::strerror(errno));
    std::fclose(f);
    f = nullptr;
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw CheckpointError(path + ": rename failed: " + std::strerror(errno));
    // the rename is durable once the folder is synced
    const auto slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  } catch (...) {
    if (f) std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace tl
