# FindTensorRT: the TensorRT C++ SDK (headers + libnvinfer + libnvonnxparser).
#
# Looks under TensorRT_ROOT (CMake or environment variable), then the places JetPack and
# NVIDIA's .deb/.tar packages use. The pip wheels ship the libraries without headers, so a
# pip-only install is not found (say where the SDK is with -DTensorRT_ROOT=...).
#
# Defines TensorRT_FOUND, TensorRT_VERSION, TensorRT_INCLUDE_DIRS, TensorRT_LIBRARIES and
# the imported target TensorRT::TensorRT.

set(_trt_hints ${TensorRT_ROOT} $ENV{TensorRT_ROOT} $ENV{TENSORRT_ROOT} /usr/local/tensorrt /opt/tensorrt)

find_path(TensorRT_INCLUDE_DIR NvInfer.h
  HINTS ${_trt_hints}
  PATH_SUFFIXES include include/${CMAKE_LIBRARY_ARCHITECTURE})
find_library(TensorRT_nvinfer_LIBRARY nvinfer
  HINTS ${_trt_hints}
  PATH_SUFFIXES lib lib64 lib/${CMAKE_LIBRARY_ARCHITECTURE})
find_library(TensorRT_nvonnxparser_LIBRARY nvonnxparser
  HINTS ${_trt_hints}
  PATH_SUFFIXES lib lib64 lib/${CMAKE_LIBRARY_ARCHITECTURE})

if(TensorRT_INCLUDE_DIR AND EXISTS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h")
  file(READ "${TensorRT_INCLUDE_DIR}/NvInferVersion.h" _trt_version_h)
  # TensorRT 10.x defines NV_TENSORRT_MAJOR as a number; later releases define it through
  # TRT_MAJOR_ENTERPRISE. Read whichever carries the digits.
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX MATCH "#define TRT_${_part}_ENTERPRISE ([0-9]+)" _m "${_trt_version_h}")
    if(NOT _m)
      string(REGEX MATCH "#define NV_TENSORRT_${_part} ([0-9]+)" _m "${_trt_version_h}")
    endif()
    set(_trt_${_part} "${CMAKE_MATCH_1}")
  endforeach()
  set(TensorRT_VERSION "${_trt_MAJOR}.${_trt_MINOR}.${_trt_PATCH}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(TensorRT
  REQUIRED_VARS TensorRT_INCLUDE_DIR TensorRT_nvinfer_LIBRARY TensorRT_nvonnxparser_LIBRARY
  VERSION_VAR TensorRT_VERSION)

if(TensorRT_FOUND)
  set(TensorRT_INCLUDE_DIRS "${TensorRT_INCLUDE_DIR}")
  set(TensorRT_LIBRARIES "${TensorRT_nvinfer_LIBRARY}" "${TensorRT_nvonnxparser_LIBRARY}")
  if(NOT TARGET TensorRT::TensorRT)
    add_library(TensorRT::TensorRT INTERFACE IMPORTED)
    set_target_properties(TensorRT::TensorRT PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES "${TensorRT_LIBRARIES}")
  endif()
endif()
mark_as_advanced(TensorRT_INCLUDE_DIR TensorRT_nvinfer_LIBRARY TensorRT_nvonnxparser_LIBRARY)
