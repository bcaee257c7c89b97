// tl_preload.node: loads shared libraries with RTLD_GLOBAL and keeps them loaded. The addon's prebuilt binaries for
// a libtorch in a Python environment (TORCH_RESNET_TL_LIBTORCH=python|pypi) name libtorch by soname only; once this
// has loaded that environment's libc10/libtorch_cpu/..., the dynamic linker resolves the addon's dependencies to
// them, so no LD_LIBRARY_PATH and no copy of torch inside node_modules is needed. Plain N-API (C API), no libtorch.
#include <dlfcn.h>
#include <node_api.h>

#include <string>

namespace {

napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], nullptr, 0, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "open(path): path must be a string");
    return nullptr;
  }
  std::string path(len, '\0');
  napi_get_value_string_utf8(env, argv[0], path.data(), len + 1, &len);
  // never closed: the libraries stay for the life of the process, as libtorch expects
  if (!::dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
    const char* err = ::dlerror();
    napi_throw_error(env, "ERR_NATIVE_LOAD", (std::string("cannot load ") + path + ": " + (err ? err : "unknown error")).c_str());
    return nullptr;
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "open", NAPI_AUTO_LENGTH, Open, nullptr, &fn);
  napi_set_named_property(env, exports, "open", fn);
  return exports;
}
