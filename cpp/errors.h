// Typed errors of the core library. The binding maps each to a JS error code.
#pragma once
#include <stdexcept>
#include <string>

namespace tl {

// A checkpoint file is unreadable, malformed, refused (unsafe pickle) or does not match the model.
class CheckpointError : public std::runtime_error {
 public:
  explicit CheckpointError(const std::string& msg) : std::runtime_error(msg) {}
};

// A device is unknown or not available.
class DeviceError : public std::invalid_argument {
 public:
  explicit DeviceError(const std::string& msg) : std::invalid_argument(msg) {}
};

}  // namespace tl
