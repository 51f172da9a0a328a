// Parsing a model description's JSON text, shared by build_model and transform_model.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "normnet/error.h"

namespace normnet {

// The nesting depth a description may have. nlohmann's parser is iterative, but dump() and the
// builder's Residual/Concat blocks recurse: a 400 KB file of nested arrays overflowed the stack
// (found with fuzz/fuzz_model.cpp). 512 levels hold blocks nested over 100 deep.
inline constexpr int kMaxDescriptionDepth = 512;

// Throws naming `source` when the text is not JSON or nests deeper than kMaxDescriptionDepth,
// which is checked while parsing.
inline nlohmann::json parse_description(const std::string& text, const std::string& source) {
  struct TooDeep {};
  try {
    return nlohmann::json::parse(text, [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > kMaxDescriptionDepth) throw TooDeep{};
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    fail(source, ": not valid JSON: ", e.what());
  } catch (const TooDeep&) {
    fail(source, ": the description nests deeper than ", kMaxDescriptionDepth, " levels");
  }
}

}  // namespace normnet
