# GPU options for the native addon.
#
#   WITH_CUDA      AUTO | ON | OFF   CUDA pre/post-processing kernels (native/cuda)
#   WITH_TENSORRT  AUTO | ON | OFF   TensorRT engine runner (native/tensorrt); needs CUDA
#
# AUTO builds a part when its toolchain is found and leaves it out otherwise; ON fails the
# configure step with the reason when it is not found. Results: MOEAD_CUDA, MOEAD_TENSORRT.
# Point CMake at a compiler with -DCMAKE_CUDA_COMPILER=/path/to/nvcc (or CUDACXX), and at
# the TensorRT SDK with -DTensorRT_ROOT=/path.

set(WITH_CUDA AUTO CACHE STRING "Build the CUDA kernels: AUTO, ON or OFF")
set(WITH_TENSORRT AUTO CACHE STRING "Build the TensorRT engine runner: AUTO, ON or OFF")
set_property(CACHE WITH_CUDA PROPERTY STRINGS AUTO ON OFF)
set_property(CACHE WITH_TENSORRT PROPERTY STRINGS AUTO ON OFF)

set(MOEAD_CUDA OFF)
set(MOEAD_TENSORRT OFF)

if(NOT WITH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # Jetson Xavier (7.2) and Orin (8.7) with the JetPack toolkits; CUDA 13 dropped 7.2,
      # so there Orin, Thor (11.0) and Hopper (9.0, the x86 test machines) are built.
      execute_process(COMMAND "${CMAKE_CUDA_COMPILER}" --version OUTPUT_VARIABLE _nvcc_version)
      if(_nvcc_version MATCHES "release 1[3-9]\\.")
        set(CMAKE_CUDA_ARCHITECTURES 87 90)
      else()
        set(CMAKE_CUDA_ARCHITECTURES 72 87)
      endif()
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit)
    set(MOEAD_CUDA ON)
    message(STATUS "moead: CUDA ${CMAKE_CUDA_COMPILER_VERSION} found, kernels built for ${CMAKE_CUDA_ARCHITECTURES}")
  elseif(WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "WITH_CUDA=ON but no CUDA compiler was found: set CMAKE_CUDA_COMPILER to nvcc")
  else()
    message(STATUS "moead: no CUDA compiler found, CUDA kernels left out")
  endif()
endif()

if(NOT WITH_TENSORRT STREQUAL "OFF")
  find_package(TensorRT)
  if(TensorRT_FOUND AND MOEAD_CUDA)
    set(MOEAD_TENSORRT ON)
    message(STATUS "moead: TensorRT ${TensorRT_VERSION} found, engine runner built")
  elseif(WITH_TENSORRT STREQUAL "ON")
    message(FATAL_ERROR "WITH_TENSORRT=ON but TensorRT (found: ${TensorRT_FOUND}) or CUDA (found: ${MOEAD_CUDA}) is missing")
  else()
    message(STATUS "moead: TensorRT SDK not found (or no CUDA), engine runner left out")
  endif()
endif()
