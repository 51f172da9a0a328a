// normnet import MODEL.onnx -o CKPT.safetensors: an ONNX network of supported operators as a
// normnet checkpoint (model description + state_dict; docs/onnx.md, "Import"). Built only with
// Debian's libonnx-dev and libprotobuf-dev (NORMNET_HAVE_ONNX), like export.
#include <cstdio>
#include <filesystem>

#include "common.h"
#include "normnet/checkpoint.h"
#include "normnet/error.h"
#ifdef NORMNET_HAVE_ONNX
#include "io/onnx_import.h"
#endif

namespace normnet::cli {

Runner add_import(CLI::App& app) {
  auto* s = app.add_subcommand("import", "Convert an ONNX model (evaluation graph) to a normnet checkpoint");
  static std::string onnx_path, out, name;
  static float mean = 0, stddev = 1;
  s->add_option("model", onnx_path, "ONNX file (.onnx)")->required();
  s->add_option("-o,--out", out, "Checkpoint (.safetensors) to write")->required();
  s->add_option("--name", name, "Model name (default: the ONNX file's name without .onnx)");
  auto* mean_opt = s->add_option("--mean", mean,
                                 "Input normalization mean, (pixel/255 - mean) / std (default: the file's "
                                 "normnet.normalization metadata, else 0)");
  auto* std_opt = s->add_option("--std", stddev, "Input normalization std (default: the metadata's, else 1)");
  return [mean_opt, std_opt] {
#ifdef NORMNET_HAVE_ONNX
    std::error_code ec1, ec2;
    const auto a = std::filesystem::weakly_canonical(onnx_path, ec1), b = std::filesystem::weakly_canonical(out, ec2);
    check(ec1 || ec2 || a != b, "-o: '", out, "' is the input ONNX file; write the checkpoint to another file");
    OnnxImportOptions opt;
    opt.name = name.empty() ? std::filesystem::path(onnx_path).stem().string() : name;
    if (mean_opt->count()) opt.mean = mean;
    if (std_opt->count()) opt.std = stddev;
    ImportedOnnx r = import_onnx_file(onnx_path, opt);
    for (const auto& n : r.report.notes) std::printf("note: %s\n", n.c_str());
    save_checkpoint(out, r.model, r.norm, {{"normnet.imported_from", onnx_path}});
    std::printf("wrote %s: model '%s' from %s (%s, opset %lld, %lld nodes): %zu top-level layers, %lld "
                "parameters, input (N", out.c_str(), r.model.name.c_str(), onnx_path.c_str(),
                r.report.producer.c_str(), static_cast<long long>(r.report.opset),
                static_cast<long long>(r.report.nodes), r.model.net->size(),
                static_cast<long long>(r.model.net->parameter_count()));
    for (int64_t d : r.model.input) std::printf(", %lld", static_cast<long long>(d));
    std::printf("), %lld classes, normalization mean %g std %g\n", static_cast<long long>(r.model.classes),
                r.norm.mean, r.norm.std);
    return 0;
#else
    (void)mean_opt;
    (void)std_opt;
    fail("import: this normnet was built without ONNX support (install libonnx-dev and libprotobuf-dev, "
         "as scripts/setup does, and rebuild)");
#endif
  };
}

}  // namespace normnet::cli
