// An inference graph in ONNX's vocabulary (operators, attributes, named initializers), built by each model from its
// own modules in eval mode. The protobuf encoding is done in lib/onnx.ts with onnx's published schema.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace tl {

struct GraphNode {
  std::string op;  // ONNX operator type
  std::string name;
  std::vector<std::string> inputs, outputs;
  std::map<std::string, std::vector<int64_t>> ints;  // INTS attributes
  std::map<std::string, int64_t> int_attrs;          // INT attributes
  std::map<std::string, float> float_attrs;          // FLOAT attributes
};

class GraphBuilder {
 public:
  explicit GraphBuilder(std::string input) : last_(std::move(input)) {}
  // Each step consumes `x` and returns the name of its output. `prefix` is the module's state-dict prefix: the
  // initializers keep PyTorch's parameter names.
  std::string conv(const std::string& x, const torch::nn::Conv2dImpl& c, const std::string& prefix);
  std::string batchnorm(const std::string& x, const torch::nn::BatchNorm2dImpl& bn, const std::string& prefix);
  std::string relu(const std::string& x);
  std::string maxpool(const std::string& x, const torch::nn::MaxPool2dImpl& p);
  std::string add(const std::string& a, const std::string& b);
  std::string concat(const std::vector<std::string>& xs, int64_t axis);
  std::string global_avg_pool(const std::string& x);
  std::string flatten(const std::string& x);
  std::string gemm(const std::string& x, const torch::nn::LinearImpl& fc, const std::string& prefix);

  std::vector<GraphNode> nodes;
  std::vector<std::pair<std::string, torch::Tensor>> initializers;  // float32, contiguous NCHW, CPU

 private:
  std::string fresh(const std::string& op);
  GraphNode node(const std::string& op, const std::string& tag, std::vector<std::string> inputs);
  // Names the node's single output after the node, appends it, returns the output's name.
  std::string emit(GraphNode n);
  std::string init(const std::string& name, const torch::Tensor& t);
  std::string last_;
  int counter_ = 0;
};

}  // namespace tl
