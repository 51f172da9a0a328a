// normnet export CKPT -o model.onnx [--fold]: the checkpoint's evaluation-mode network as an
// ONNX model (opset 17; docs/onnx.md). Built only with Debian's libonnx-dev and libprotobuf-dev
// (NORMNET_HAVE_ONNX); otherwise the subcommand says how to get it.
#include <cstdio>
#include <filesystem>

#include "common.h"
#include "normnet/checkpoint.h"
#include "normnet/error.h"
#ifdef NORMNET_HAVE_ONNX
#include "io/onnx_export.h"
#endif

namespace normnet::cli {

Runner add_export(CLI::App& app) {
  auto* s = app.add_subcommand("export", "Write a checkpoint's network as an ONNX model (evaluation mode, opset 17)");
  static std::string ckpt, out;
  static bool fold = false;
  s->add_option("checkpoint", ckpt, "Checkpoint (.safetensors)")->required();
  s->add_option("-o,--out", out, "ONNX file to write")->required();
  s->add_flag("--fold", fold, "Fold BatchNorm into the Conv/Linear before it (as normnet fold) instead of "
                              "exporting BatchNormalization nodes");
  return [] {
#ifdef NORMNET_HAVE_ONNX
    std::error_code ec1, ec2;
    const auto a = std::filesystem::weakly_canonical(ckpt, ec1), b = std::filesystem::weakly_canonical(out, ec2);
    check(ec1 || ec2 || a != b, "-o: '", out, "' is the input checkpoint; write the ONNX model to another file");
    LoadedCheckpoint c = load_checkpoint(ckpt);
    OnnxExportOptions opt;
    opt.fold = fold;
    OnnxExportReport report;
    export_onnx(out, c.model, c.norm, opt, &report);
    for (const auto& f : report.folded) std::printf("folded %s\n", f.c_str());
    for (const auto& k : report.kept) std::printf("%s\n", k.c_str());
    std::printf("wrote %s: opset %lld, %lld nodes, %lld initializers, input 'input' (N, ", out.c_str(),
                static_cast<long long>(report.opset), static_cast<long long>(report.nodes),
                static_cast<long long>(report.initializers));
    for (size_t i = 0; i < c.model.input.size(); ++i)
      std::printf("%s%lld", i ? ", " : "", static_cast<long long>(c.model.input[i]));
    std::printf("), output 'logits' (N, %lld)\n", static_cast<long long>(c.model.classes));
    return 0;
#else
    fail("export: this normnet was built without ONNX support (install libonnx-dev and libprotobuf-dev, "
         "as scripts/setup does, and rebuild)");
#endif
  };
}

}  // namespace normnet::cli
