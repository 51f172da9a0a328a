// normnet fold CKPT -o OUT: folds BatchNorm layers into the Conv/Linear before them
// (include/normnet/fold.h), writing an ordinary checkpoint that eval and predict load.
#include <cstdio>
#include <filesystem>

#include "common.h"
#include "normnet/checkpoint.h"
#include "normnet/error.h"
#include "normnet/fold.h"

namespace normnet::cli {

Runner add_fold(CLI::App& app) {
  auto* s = app.add_subcommand(
      "fold", "Fold BatchNorm layers into the preceding Conv/Linear layers for deployment (evaluation semantics)");
  static std::string ckpt, out;
  s->add_option("checkpoint", ckpt, "Checkpoint (.safetensors) to fold")->required();
  s->add_option("-o,--out", out, "Folded checkpoint to write (a new file)")->required();
  return [] {
    std::error_code ec1, ec2;
    const auto a = std::filesystem::weakly_canonical(ckpt, ec1), b = std::filesystem::weakly_canonical(out, ec2);
    check(ec1 || ec2 || a != b, "-o: '", out,
          "' is the input checkpoint; write the folded model to another file (it can no longer be "
          "trained as the original)");
    check_output_file(out, "-o");
    LoadedCheckpoint c = load_checkpoint(ckpt);
    FoldReport report;
    Model folded = fold_batchnorm(c.model, &report);
    for (const auto& f : report.folded) std::printf("folded %s\n", f.c_str());
    for (const auto& k : report.kept) std::printf("%s\n", k.c_str());
    // Keep the original's other metadata (epoch, ...); save_checkpoint sets the model, format
    // and normalization.
    std::map<std::string, std::string> extra;
    for (const auto& [k, v] : c.metadata)
      if (k != "normnet.model" && k != "normnet.format" && k != "normnet.normalization") extra[k] = v;
    std::string list;
    for (const auto& f : report.folded) list += (list.empty() ? "" : "; ") + f;
    extra["normnet.folded"] = list;
    save_checkpoint(out, folded, c.norm, extra);
    std::printf("wrote %s: %zu BatchNorm layer(s) folded, %zu kept\n", out.c_str(), report.folded.size(),
                report.kept.size());
    return 0;
  };
}

}  // namespace normnet::cli
