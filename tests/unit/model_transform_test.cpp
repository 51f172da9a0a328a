// transform_model (normnet train --activation / --norm / --bn-position): each rewrite on a small
// description with a Residual block, checked on the JSON and by building the result; every zoo
// model survives every transform whose layer types the builder knows; bad flags and
// indivisible group counts are errors naming the flag or the layer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/model.h"

namespace normnet {
namespace {

using json = nlohmann::json;

const char* kNet = R"({
  "name": "t", "notes": ["n"], "input": [1, 8, 8], "classes": 10,
  "layers": [
    {"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"type": "BatchNorm2d", "name": "bn1", "num_features": 8, "eps": 0.001},
    {"type": "ReLU", "name": "relu1"},
    {"type": "Residual", "name": "block", "activation": "ReLU", "body": [
      {"type": "Conv2d", "name": "conv1", "in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1},
      {"type": "BatchNorm2d", "name": "bn1", "num_features": 8},
      {"type": "ELU", "name": "act", "alpha": 0.5},
      {"type": "Conv2d", "name": "conv2", "in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1},
      {"type": "BatchNorm2d", "name": "bn2", "num_features": 8}
    ], "shortcut": [{"type": "Conv2d", "in_channels": 8, "out_channels": 8, "kernel_size": 1}, {"type": "BatchNorm2d", "num_features": 8}]},
    {"type": "GlobalAvgPool"},
    {"type": "Linear", "name": "fc", "in_features": 8, "out_features": 16},
    {"type": "BatchNorm1d", "name": "bnf", "num_features": 16},
    {"type": "ReLU", "name": "relu2"},
    {"type": "Linear", "name": "out", "in_features": 16, "out_features": 10}
  ]})";

json rewrite(const ModelTransform& t, const std::string& text = kNet) {
  return json::parse(transform_model(text, t, "t.json"));
}

std::vector<std::string> types(const json& layers) {
  std::vector<std::string> out;
  for (const json& l : layers) out.push_back(l["type"]);
  return out;
}

// The error message of f(), or "" when it does not throw.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelTransform, EmptyTransformKeepsTheDescription) {
  const json j = rewrite({});
  EXPECT_EQ(j, json::parse(kNet));
  ModelTransform bn;
  bn.norm = "bn";
  EXPECT_TRUE(bn.empty());
  EXPECT_EQ(rewrite(bn), json::parse(kNet));
}

TEST(ModelTransform, EluReplacesEveryReluIncludingResidualActivation) {
  ModelTransform t;
  t.activation = "elu";
  const json j = rewrite(t);
  EXPECT_EQ(types(j["layers"]), (std::vector<std::string>{"Conv2d", "BatchNorm2d", "ELU", "Residual",
                                                          "GlobalAvgPool", "Linear", "BatchNorm1d",
                                                          "ELU", "Linear"}));
  EXPECT_EQ(j["layers"][2]["name"], "relu1");  // names kept
  EXPECT_EQ(j["layers"][3]["activation"], "ELU");
  EXPECT_EQ(j["layers"][3]["body"][2]["alpha"], 0.5);  // an ELU already there is left alone
  EXPECT_EQ(j["name"], "t-elu");
  EXPECT_EQ(j["notes"].size(), 2u);
  EXPECT_NE(j["notes"][1].get<std::string>().find("--activation elu"), std::string::npos);
  Model m = build_model(j.dump(), "t.json");
  EXPECT_EQ(m.net->parameter_count(), build_model(kNet, "t.json").net->parameter_count());

  t.activation = "relu";
  const json r = rewrite(t);
  EXPECT_EQ(r["layers"][3]["body"][2]["type"], "ReLU");
  EXPECT_FALSE(r["layers"][3]["body"][2].contains("alpha"));
  EXPECT_EQ(r["layers"][3]["activation"], "ReLU");
}

TEST(ModelTransform, GroupNormReplacesBatchNormWithMatchingChannels) {
  ModelTransform t;
  t.norm = "gn:4";
  const json j = rewrite(t);
  const json& g = j["layers"][1];
  EXPECT_EQ(g["type"], "GroupNorm");
  EXPECT_EQ(g["name"], "bn1");
  EXPECT_EQ(g["num_groups"], 4);
  EXPECT_EQ(g["num_channels"], 8);
  EXPECT_EQ(g["eps"], 0.001);  // carried over
  EXPECT_EQ(j["layers"][3]["body"][4]["type"], "GroupNorm");
  EXPECT_EQ(j["layers"][3]["shortcut"][1]["type"], "GroupNorm");
  EXPECT_EQ(j["layers"][6]["num_channels"], 16);  // BatchNorm1d too
  EXPECT_EQ(j["name"], "t-gn_4");
  Model m = build_model(j.dump(), "t.json");
  for (auto& [name, b] : m.net->named_buffers()) ADD_FAILURE() << "buffer left: " << name;
  // Same parameter names and shapes as the BatchNorm net: weight and bias per channel.
  Model bn = build_model(kNet, "t.json");
  auto a = m.net->named_parameters(), b = bn.net->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second->value.shape(), b[i].second->value.shape()) << a[i].first;
  }

  t.norm = "gn:3";
  const std::string e = error_of([&] { rewrite(t); });
  EXPECT_NE(e.find("t.json"), std::string::npos) << e;
  EXPECT_NE(e.find("bn1"), std::string::npos) << e;
  EXPECT_NE(e.find("not divisible"), std::string::npos) << e;
}

TEST(ModelTransform, LnIsGroupNormWithOneGroup) {
  ModelTransform t;
  t.norm = "ln";
  const json j = rewrite(t);
  EXPECT_EQ(j["layers"][1]["type"], "GroupNorm");
  EXPECT_EQ(j["layers"][1]["num_groups"], 1);
  EXPECT_EQ(j["layers"][6]["num_groups"], 1);
  // GroupNorm(1, C) on (N, C) equals LayerNorm(C): one sample's values normalized together.
  Model m = build_model(j.dump(), "t.json");
  m.init_parameters(3);
  m.net->train();
  Tensor x(m.batch_shape(4));
  Rng rng(5);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(rng.normal());
  const Tensor y = m.net->forward(x);
  EXPECT_EQ(y.shape(), (Shape{4, 10}));
}

TEST(ModelTransform, InstanceNormIsAffine) {
  ModelTransform t;
  t.norm = "in";
  const json j = rewrite(t);
  EXPECT_EQ(j["layers"][1]["type"], "InstanceNorm2d");
  EXPECT_EQ(j["layers"][1]["affine"], true);
  EXPECT_EQ(j["layers"][6]["type"], "InstanceNorm1d");  // the builder refuses it on (N, C)
  const std::string e = error_of([&] { build_model(j.dump(), "t.json"); });
  EXPECT_NE(e.find("bnf"), std::string::npos) << e;
  // Without the BatchNorm1d the rest builds.
  json k = json::parse(kNet);
  k["layers"].erase(6);
  Model m = build_model(rewrite(t, k.dump()).dump(), "t.json");
  EXPECT_EQ(m.net->named_parameters().size(), build_model(k.dump(), "t.json").net->named_parameters().size());
}

TEST(ModelTransform, NoneRemovesEveryBatchNorm) {
  ModelTransform t;
  t.norm = "none";
  const json j = rewrite(t);
  EXPECT_EQ(types(j["layers"]), (std::vector<std::string>{"Conv2d", "ReLU", "Residual", "GlobalAvgPool",
                                                          "Linear", "ReLU", "Linear"}));
  EXPECT_EQ(types(j["layers"][2]["body"]), (std::vector<std::string>{"Conv2d", "ELU", "Conv2d"}));
  EXPECT_EQ(types(j["layers"][2]["shortcut"]), (std::vector<std::string>{"Conv2d"}));
  Model m = build_model(j.dump(), "t.json");
  EXPECT_TRUE(m.net->named_buffers().empty());
}

TEST(ModelTransform, RenormAndGhostAreEmittedWithTheirArguments) {
  ModelTransform t;
  t.norm = "brn";
  json j = rewrite(t);
  EXPECT_EQ(j["layers"][1]["type"], "BatchRenorm2d");
  EXPECT_EQ(j["layers"][1]["num_features"], 8);
  EXPECT_EQ(j["layers"][1]["eps"], 0.001);
  EXPECT_EQ(j["layers"][6]["type"], "BatchRenorm1d");
  t.norm = "ghost:16";
  j = rewrite(t);
  EXPECT_EQ(j["layers"][1]["type"], "GhostBatchNorm2d");
  EXPECT_EQ(j["layers"][1]["virtual_batch_size"], 16);
  EXPECT_EQ(j["name"], "t-ghost_16");
  // Whether they build depends on the builder knowing the types; if it does not, it names the type.
  for (const char* n : {"brn", "ghost:4"}) {
    t.norm = n;
    const std::string e = error_of([&] { build_model(rewrite(t).dump(), "t.json"); });
    if (!e.empty()) {
      EXPECT_NE(e.find("unknown layer type"), std::string::npos) << n << ": " << e;
    }
  }
}

TEST(ModelTransform, BnPositionSwapsNormActivationPairs) {
  ModelTransform t;
  t.bn_position = "after";
  const json j = rewrite(t);
  EXPECT_EQ(types(j["layers"]), (std::vector<std::string>{"Conv2d", "ReLU", "BatchNorm2d", "Residual",
                                                          "GlobalAvgPool", "Linear", "ReLU",
                                                          "BatchNorm1d", "Linear"}));
  // In the block: bn1/act swap; bn2 (before the addition, no activation after it) stays.
  EXPECT_EQ(types(j["layers"][3]["body"]),
            (std::vector<std::string>{"Conv2d", "ELU", "BatchNorm2d", "Conv2d", "BatchNorm2d"}));
  EXPECT_EQ(j["name"], "t-bnafter");
  build_model(j.dump(), "t.json");
  // "before" undoes it.
  t.bn_position = "before";
  json back = json::parse(transform_model(j.dump(), t, "t.json"));
  back["name"] = "t";
  back["notes"] = json::array({"n"});
  EXPECT_EQ(back, json::parse(kNet));
  // ... and leaves a BN-before-activation model as it is (apart from name and notes).
  json same = rewrite(t);
  EXPECT_EQ(same["layers"], json::parse(kNet)["layers"]);
}

TEST(ModelTransform, CombinedTransformsComposeAndKeepTheKerasOrderMeaning) {
  ModelTransform t;
  t.activation = "elu";
  t.norm = "gn:2";
  t.bn_position = "after";
  const json j = rewrite(t);
  EXPECT_EQ(types(j["layers"]), (std::vector<std::string>{"Conv2d", "ELU", "GroupNorm", "Residual",
                                                          "GlobalAvgPool", "Linear", "ELU", "GroupNorm",
                                                          "Linear"}));
  EXPECT_EQ(j["name"], "t-elu-gn_2-bnafter");
  build_model(j.dump(), "t.json");
}

TEST(ModelTransform, BadFlagsAreErrorsNamingTheFlag) {
  struct Case {
    int field;
    std::string value, flag;
  };
  for (const Case& c : std::vector<Case>{
           {0, "tanh", "--activation"}, {1, "gn", "--norm"}, {1, "gn:0", "--norm gn:G"},
           {1, "gn:x", "--norm gn:G"}, {1, "ghost:", "--norm ghost:V"}, {1, "batch", "--norm"},
           {2, "middle", "--bn-position"}}) {
    const int field = c.field;
    const std::string &value = c.value, &flag = c.flag;
    ModelTransform t;
    (field == 0 ? t.activation : field == 1 ? t.norm : t.bn_position) = value;
    const std::string e = error_of([&] { rewrite(t); });
    EXPECT_NE(e.find(flag), std::string::npos) << value << ": " << e;
  }
  ModelTransform t;
  t.activation = "elu";
  const std::string e = error_of([&] { transform_model("{not json", t, "bad.json"); });
  EXPECT_NE(e.find("bad.json"), std::string::npos) << e;
}

TEST(ModelTransform, EveryZooModelTakesEveryBuildableTransform) {
  // Every --norm once, with the activation and position rewrites mixed in. The two big
  // networks (ResNet-18, VGG-11: building allocates and initializes ~10M parameters) take only
  // the first, to keep the test fast.
  const std::vector<ModelTransform> ts{{"elu", "gn:2", "after"}, {"", "ln", "before"}, {"relu", "brn", ""},
                                       {"", "ghost:4", "after"}, {"elu", "none", ""}};
  for (const std::string& name : zoo_model_names()) {
    const auto bytes = read_file(find_model_file(name));
    const std::string text(bytes.begin(), bytes.end());
    const bool big = name.rfind("resnet18", 0) == 0 || name.rfind("vgg11", 0) == 0;
    for (size_t i = 0; i < (big ? 1 : ts.size()); ++i) {
      const ModelTransform& t = ts[i];
      const std::string what = name + " " + t.activation + " " + t.norm + " " + t.bn_position;
      try {
        Model m = build_model(transform_model(text, t, name), name);
        EXPECT_GT(m.net->parameter_count(), 0) << what;
      } catch (const Error& e) {
        ADD_FAILURE() << what << ": " << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace normnet
