// normnet summary MODEL|CKPT: a layer table with output shapes and parameter counts.
#include <cstdio>

#include "common.h"
#include "normnet/checkpoint.h"

namespace normnet::cli {

namespace {
void rows(Module& m, const std::string& name, Shape& shape, int depth) {
  auto kids = m.children();
  const bool container = m.kind() == "Sequential" || m.kind() == "Residual";
  if (container && depth >= 0) {
    if (m.kind() == "Residual") {
      const Shape out = m.output_shape(shape);
      std::printf("%-28s %-44s %-20s %10lld\n", name.c_str(), "Residual", out.str().c_str(),
                  static_cast<long long>(m.parameter_count()));
      shape = out;
      return;
    }
  }
  if (container) {
    for (auto& [n, c] : kids) rows(*c, name.empty() ? n : name + "." + n, shape, depth + 1);
    return;
  }
  shape = m.output_shape(shape);
  std::printf("%-28s %-44s %-20s %10lld\n", name.c_str(), m.describe().substr(0, 44).c_str(),
              shape.str().c_str(), static_cast<long long>(m.parameter_count()));
}
}  // namespace

Runner add_summary(CLI::App& app) {
  auto* sub = app.add_subcommand("summary", "Layer table of a model or checkpoint: output shapes, parameters");
  static std::string what;
  sub->add_option("model", what, "Zoo model name, model .json file or checkpoint .safetensors")->required();
  return [] {
    Model m = what.ends_with(".safetensors") ? load_checkpoint(what).model : load_model(what);
    std::printf("Model: %s\n", m.name.c_str());
    std::printf("%-28s %-44s %-20s %10s\n", "layer", "type", "output shape", "params");
    std::printf("%s\n", std::string(105, '-').c_str());
    Shape s = m.batch_shape(1);
    std::printf("%-28s %-44s %-20s %10d\n", "input", "", s.str().c_str(), 0);
    rows(*m.net, "", s, -1);
    std::printf("%s\n", std::string(105, '-').c_str());
    int64_t trainable = m.net->parameter_count(), buffers = 0;
    for (auto& [n, b] : m.net->named_buffers()) buffers += b.f32 ? b.f32->numel() : 1;
    std::printf("Trainable parameters: %lld\nBuffers (running statistics): %lld values\n",
                static_cast<long long>(trainable), static_cast<long long>(buffers));
    return 0;
  };
}

}  // namespace normnet::cli
