// NoGrad (include/normnet/module.h): inference that keeps no activation for a backward.
// Over every zoo model (the -c32 twins differ only in their input): the outputs under NoGrad are bit-identical to an ordinary eval-mode
// forward; a backward after a NoGrad forward is an error naming a layer, never a silent use of
// an older forward's activations; once the guard is gone, forward + backward work again.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "normnet/error.h"
#include "normnet/model.h"

namespace normnet {
namespace {

Tensor input_for(const Model& m, int64_t n) {
  Rng rng(3);
  Tensor x(m.batch_shape(n));
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(rng.normal());
  return x;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel())) == 0;
}

TEST(NoGrad, SameOutputsNoSavedActivationsForEveryZooModel) {
  for (const std::string& name : zoo_model_names()) {
    if (name.ends_with("-c32")) continue;
    Model m = load_model(name);
    m.init_parameters(5);
    m.net->eval();
    const Tensor x = input_for(m, 2);
    const Tensor want = m.net->forward(x).clone();
    Tensor dy = Tensor::full(want.shape(), 0.5f);
    m.net->backward(dy);  // an ordinary forward keeps what backward needs
    {
      NoGrad guard;
      EXPECT_FALSE(grad_enabled());
      const Tensor got = m.net->forward(x);
      EXPECT_TRUE(same_bits(got, want)) << name;
      try {
        m.net->backward(dy);
        ADD_FAILURE() << name << ": backward after a NoGrad forward did not fail";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("backward called before forward"), std::string::npos)
            << name << ": " << e.what();
      }
    }
    EXPECT_TRUE(grad_enabled());
    EXPECT_TRUE(same_bits(m.net->forward(x), want)) << name;
    EXPECT_NO_THROW(m.net->backward(dy)) << name;
  }
}

TEST(NoGrad, GuardsNest) {
  EXPECT_TRUE(grad_enabled());
  {
    NoGrad a;
    {
      NoGrad b;
      EXPECT_FALSE(grad_enabled());
    }
    EXPECT_FALSE(grad_enabled());
  }
  EXPECT_TRUE(grad_enabled());
}

}  // namespace
}  // namespace normnet
