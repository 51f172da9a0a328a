#include "common.h"

#include <omp.h>
#include <unistd.h>

#include <filesystem>

#include "normnet/error.h"

namespace normnet::cli {

Dataset load_for_model(const std::string& dir, bool train, int64_t limit, const Model& m,
                       const Normalization& norm) {
  Dataset d = load_split(dir, train, limit, m.classes);  // MNIST/IDX or CIFAR-10 binary
  const Shape want = m.batch_shape(d.size());
  check(d.images.shape() == want, dir, ": images are ", d.images.shape().str(),
        " but model '", m.name, "' takes ", want.str());
  normalize_inplace(d.images, norm);
  return d;
}

void check_output_file(const std::string& path, const char* what) {
  namespace fs = std::filesystem;
  check(!path.empty(), what, ": empty output path");
  std::error_code ec;
  const fs::path dir = fs::path(path).parent_path();
  check(dir.empty() || fs::is_directory(dir, ec), what, " '", path, "': directory '", dir.string(),
        "' does not exist");
  check(!fs::is_directory(path, ec), what, " '", path, "' is a directory");
}

void set_threads(int threads) {
  check(threads >= 0 && threads <= 1024, "--threads must be in [0, 1024], got ", threads);
  if (threads > 0) omp_set_num_threads(threads);
}

ConvOption& conv_option() {
  static ConvOption option;
  return option;
}

bool stderr_is_terminal() { return isatty(STDERR_FILENO) != 0; }

}  // namespace normnet::cli
