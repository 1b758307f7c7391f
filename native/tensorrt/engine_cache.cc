#include "engine_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace moead {

namespace {

std::string Tag(const EngineKey& key) { return "trt" + key.tensorrt + "-sm" + key.compute; }

}  // namespace

std::string EngineFile(const std::string& dir, const EngineKey& key) {
  std::string name = key.model_sha256.substr(0, 16) + "-" + Tag(key) + "-" + key.precision;
  if (key.dla_core >= 0) name += "-dla" + std::to_string(key.dla_core);
  return dir + "/" + name + "-b" + std::to_string(key.max_batch) + ".engine";
}

std::string TimingCacheFile(const std::string& dir, const EngineKey& key) { return dir + "/timing-" + Tag(key) + ".cache"; }

bool ReadFileBytes(const std::string& path, std::vector<char>* bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return false;
  const std::streamsize size = in.tellg();
  if (size < 0) return false;
  bytes->resize(static_cast<size_t>(size));
  in.seekg(0);
  return static_cast<bool>(in.read(bytes->data(), size));
}

void WriteFileAtomic(const std::string& path, const void* data, size_t size) {
  const std::string tmp = path + ".tmp" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size)) || !out.flush()) {
      std::remove(tmp.c_str());
      throw std::runtime_error("could not write " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw std::runtime_error("could not rename " + tmp + " to " + path + ": " + why);
  }
}

void MakeDirs(const std::string& dir) {
  if (dir.empty()) throw std::runtime_error("the engine cache directory is an empty path");
  // Each prefix ending before a '/', then the whole path. The search starts at index 1 so a
  // leading '/' is not taken for an empty first component, yet "a/b" still creates "a" first.
  size_t pos = 0;
  do {
    pos = dir.find('/', pos + 1);
    const std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      throw std::runtime_error("could not create " + part + ": " + std::strerror(errno));
    }
  } while (pos != std::string::npos);
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) throw std::runtime_error("could not create " + dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw std::runtime_error("could not create " + dir + ": a file of that name is in the way");
}

}  // namespace moead
