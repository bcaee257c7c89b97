// Atomic file output: write to a temporary file in the same folder, fsync, rename over the target.
#pragma once
#include <functional>
#include <string>

namespace tl {

// `write` receives a sink taking (data, size); on any exception the temporary file is removed and the
// target is left untouched.
using Sink = std::function<void(const void*, size_t)>;
void write_atomic(const std::string& path, const std::function<void(const Sink&)>& write);

}  // namespace tl
