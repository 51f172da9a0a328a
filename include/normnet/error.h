// normnet::Error: the one exception type of the library. Its message names what is at
// fault (layer, tensor, file, flag) and what was expected.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace normnet {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Builds a message from any streamable parts: fail("layer '", name, "': bad shape").
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  throw Error(s.str());
}

template <typename... Parts>
void check(bool ok, const Parts&... parts) {
  if (!ok) fail(parts...);
}

}  // namespace normnet
