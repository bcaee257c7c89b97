# Imports libtorch from a folder with include/ and lib/ (TL_LIBTORCH_ROOT): PyPI's `torch` package folder or
# PyTorch's official libtorch zip, CPU or CUDA. Defines the `torch` interface target and TORCH_LIBRARIES as
# find_package(Torch) would, TL_WITH_CUDA when the folder holds libtorch_cuda (unless TL_CUDA=OFF), and
# TL_LIBTORCH_RPATH for the addon.
set(_root "${TL_LIBTORCH_ROOT}")
foreach(_f include/torch/csrc/api/include/torch/torch.h lib/libtorch_cpu.so lib/libc10.so)
  if(NOT EXISTS "${_root}/${_f}")
    message(FATAL_ERROR "TL_LIBTORCH_ROOT=${_root} is not a libtorch folder: ${_f} is missing")
  endif()
endforeach()

add_library(torch INTERFACE IMPORTED)
set_target_properties(torch PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_root}/include;${_root}/include/torch/csrc/api/include")
set(TORCH_LIBRARIES torch "${_root}/lib/libtorch_cpu.so" "${_root}/lib/libc10.so")
set(TL_LIBTORCH_RPATH "${_root}/lib")
# A libtorch inside the package (the pypi variant's .torch2/venv) is also found relative to the binary, from the
# local build (build-<variant>/Release) and from a prebuilt one (variants/<variant>/prebuilds/<platform>/).
file(RELATIVE_PATH _rel "${CMAKE_SOURCE_DIR}" "${_root}/lib")
if(NOT _rel MATCHES "^\\.\\.")
  list(APPEND TL_LIBTORCH_RPATH "$ORIGIN/../../${_rel}" "$ORIGIN/../../../../${_rel}")
endif()

# libtorch 2.10+ headers need C++20 (their TorchConfig says so); older ones are fine with C++17.
set(_vh "${_root}/include/torch/headeronly/version.h")  # 2.9+; older releases define it in the API's version.h
if(NOT EXISTS "${_vh}")
  set(_vh "${_root}/include/torch/csrc/api/include/torch/version.h")
endif()
file(STRINGS "${_vh}" _ver REGEX "define TORCH_VERSION_(MAJOR|MINOR) ")
string(REGEX MATCH "MAJOR ([0-9]+)" _m "${_ver}")
set(_major ${CMAKE_MATCH_1})
string(REGEX MATCH "MINOR ([0-9]+)" _m "${_ver}")
set(_minor ${CMAKE_MATCH_1})
if(_major GREATER 2 OR (_major EQUAL 2 AND _minor GREATER_EQUAL 10))
  set(CMAKE_CXX_STANDARD 20)
endif()
message(STATUS "libtorch ${_major}.${_minor} from ${_root} (C++${CMAKE_CXX_STANDARD})")

if(NOT DEFINED TL_CUDA)
  set(TL_CUDA AUTO)
endif()
if(EXISTS "${_root}/lib/libtorch_cuda.so" AND NOT TL_CUDA STREQUAL "OFF")
  # CUDA runtime headers (with crt/): TL_CUDA_INCLUDE, else PyPI's nvidia wheels next to the torch package
  # (nvidia-cuda-runtime + nvidia-cuda-crt), else a toolkit ($CUDA_HOME, /usr/local/cuda).
  if(NOT TL_CUDA_INCLUDE)
    file(GLOB _cands "${_root}/../nvidia/cu*/include" "${_root}/../nvidia/cuda_runtime/include" "$ENV{CUDA_HOME}/include" /usr/local/cuda/include)
    foreach(_c ${_cands})
      if(EXISTS "${_c}/cuda_runtime_api.h" AND EXISTS "${_c}/crt/host_defines.h")
        set(TL_CUDA_INCLUDE "${_c}")
        break()
      endif()
    endforeach()
  endif()
  if(TL_CUDA_INCLUDE)
    set(TL_WITH_CUDA ON)
    set_property(TARGET torch APPEND PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${TL_CUDA_INCLUDE}")
    # --no-as-needed: nothing references libtorch_cuda's symbols directly, but loading it registers the CUDA
    # backend (kernels, allocator, hooks) that torch::cuda::is_available() and every CUDA tensor need.
    list(APPEND TORCH_LIBRARIES "-Wl,--no-as-needed" "${_root}/lib/libtorch_cuda.so" "${_root}/lib/libc10_cuda.so" "-Wl,--as-needed")
    message(STATUS "CUDA build: libtorch_cuda linked, CUDA headers from ${TL_CUDA_INCLUDE}")
  elseif(TL_CUDA STREQUAL "ON")
    message(FATAL_ERROR "TL_CUDA=ON but no CUDA runtime headers (cuda_runtime_api.h) were found; set TL_CUDA_INCLUDE")
  else()
    message(STATUS "libtorch_cuda present but no CUDA headers found: CPU-only build")
  endif()
endif()
