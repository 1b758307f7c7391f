// sdNotify(socket, message): one datagram to the service manager's notification socket, the
// protocol of sd_notify(3). Node has no AF_UNIX datagram sockets, so the daemon's systemd
// integration (src/util/sd-notify.ts) sends through here. Synchronous: a datagram to a local
// socket is a single non-blocking syscall, with nothing worth a thread-pool hop.
#include <napi.h>

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "ops.h"

namespace moead {

namespace {

std::string StringArg(const Napi::Value& value, const char* name) {
  if (!value.IsString()) throw Napi::TypeError::New(value.Env(), std::string(name) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

Napi::Value SdNotifyJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string socket_path = StringArg(info[0], "socket");
  const std::string message = StringArg(info[1], "message");

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // "/path" names a file; "@name" the abstract namespace, where the '@' stands for a NUL byte.
  if (socket_path.empty() || (socket_path[0] != '/' && socket_path[0] != '@')) {
    throw Napi::RangeError::New(env, "socket must be an absolute path or an abstract name starting with @, not \"" + socket_path + "\"");
  }
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    throw Napi::RangeError::New(env, "socket \"" + socket_path + "\" is longer than " + std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (socket_path[0] == '@') addr.sun_path[0] = '\0';
  // An abstract name's length is exactly its bytes; a path's terminating NUL is included.
  const socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path.size() + (socket_path[0] == '/' ? 1 : 0));

  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Napi::Error::New(env, std::string("cannot create a datagram socket: ") + strerror(errno));
  // MSG_DONTWAIT: a manager that does not read its queue must not stall the event loop; the
  // caller sees EAGAIN and reports a lost notification instead.
  const ssize_t sent = sendto(fd, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), length);
  const int error = errno;
  close(fd);
  if (sent < 0) throw Napi::Error::New(env, "sending to " + socket_path + ": " + strerror(error));
  if (static_cast<size_t>(sent) != message.size()) {
    throw Napi::Error::New(env, "sending to " + socket_path + ": " + std::to_string(sent) + " of " + std::to_string(message.size()) + " bytes sent");
  }
  return env.Undefined();
}

}  // namespace

void RegisterServiceOps(Napi::Env env, Napi::Object exports) {
  exports.Set("sdNotify", Napi::Function::New(env, SdNotifyJs, "sdNotify"));
}

}  // namespace moead
