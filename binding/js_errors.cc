#include "js_errors.h"

#include <c10/util/Exception.h>

#include "../cpp/errors.h"
#include "../cpp/data/dataset.h"
#include "../cpp/dist/process_group.h"

namespace tlb {

ErrorInfo classify_current_exception() {
  try {
    throw;
  } catch (const tl::CheckpointError& e) {
    return {"ERR_CHECKPOINT", e.what()};
  } catch (const tl::ImageError& e) {
    return {"ERR_DATASET", e.what()};
  } catch (const tl::DatasetError& e) {
    return {"ERR_DATASET", e.what()};
  } catch (const tl::DeviceError& e) {
    return {"ERR_DEVICE", e.what()};
  } catch (const tl::DistributedError& e) {
    return {"ERR_DISTRIBUTED", e.what()};
  } catch (const std::invalid_argument& e) {
    return {"ERR_INVALID_OPTION", e.what()};
  } catch (const c10::OutOfMemoryError& e) {  // CUDA's caching allocator, and ours on the CPU
    return {"ERR_OUT_OF_MEMORY", e.what_without_backtrace()};
  } catch (const c10::Error& e) {
    return {"ERR_NATIVE", e.what_without_backtrace()};
  } catch (const std::bad_alloc&) {
    return {"ERR_OUT_OF_MEMORY", "out of memory (std::bad_alloc)"};
  } catch (const std::exception& e) {
    return {"ERR_NATIVE", e.what()};
  } catch (...) {
    return {"ERR_NATIVE", "unknown native error"};
  }
}

Napi::Error make_error(Napi::Env env, const ErrorInfo& info) {
  Napi::Error err = Napi::Error::New(env, info.message);
  err.Set("code", Napi::String::New(env, info.code));
  return err;
}

}  // namespace tlb
