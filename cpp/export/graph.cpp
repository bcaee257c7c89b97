#include "export/graph.h"

#include <stdexcept>

#include "torch_compat.h"

namespace tl {
namespace {

template <size_t N>
std::vector<int64_t> vec(const torch::ExpandingArray<N>& a) {
  return {a->begin(), a->end()};
}

}  // namespace

std::string GraphBuilder::fresh(const std::string& op) { return op + "_" + std::to_string(counter_++); }

GraphNode GraphBuilder::node(const std::string& op, const std::string& tag, std::vector<std::string> inputs) {
  GraphNode n;
  n.op = op;
  n.name = fresh(tag);
  n.inputs = std::move(inputs);
  return n;
}

std::string GraphBuilder::emit(GraphNode n) {
  n.outputs = {n.name};
  nodes.push_back(std::move(n));
  return nodes.back().name;
}

std::string GraphBuilder::init(const std::string& name, const torch::Tensor& t) {
  initializers.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat).contiguous());
  return name;
}

std::string GraphBuilder::conv(const std::string& x, const torch::nn::Conv2dImpl& c, const std::string& prefix) {
  const auto& o = c.options;
  auto pad = compat::conv_padding<2>(o);
  auto n = node("Conv", "conv", {x, init(prefix + ".weight", c.weight)});
  if (o.bias()) n.inputs.push_back(init(prefix + ".bias", c.bias));
  n.ints["kernel_shape"] = vec(o.kernel_size());
  n.ints["strides"] = vec(o.stride());
  n.ints["pads"] = {pad[0], pad[1], pad[0], pad[1]};
  n.ints["dilations"] = vec(o.dilation());
  n.int_attrs["group"] = o.groups();
  return emit(std::move(n));
}

std::string GraphBuilder::batchnorm(const std::string& x, const torch::nn::BatchNorm2dImpl& bn, const std::string& prefix) {
  auto n = node("BatchNormalization", "bn", {x, init(prefix + ".weight", bn.weight), init(prefix + ".bias", bn.bias),
               init(prefix + ".running_mean", bn.running_mean), init(prefix + ".running_var", bn.running_var)});
  n.float_attrs["epsilon"] = static_cast<float>(bn.options.eps());
  return emit(std::move(n));
}

std::string GraphBuilder::relu(const std::string& x) {
  return emit(node("Relu", "relu", {x}));
}

std::string GraphBuilder::maxpool(const std::string& x, const torch::nn::MaxPool2dImpl& p) {
  const auto& o = p.options;
  auto pad = vec(o.padding());
  auto n = node("MaxPool", "maxpool", {x});
  n.ints["kernel_shape"] = vec(o.kernel_size());
  n.ints["strides"] = vec(o.stride());
  n.ints["pads"] = {pad[0], pad[1], pad[0], pad[1]};
  n.ints["dilations"] = vec(o.dilation());
  n.int_attrs["ceil_mode"] = o.ceil_mode() ? 1 : 0;
  return emit(std::move(n));
}

std::string GraphBuilder::add(const std::string& a, const std::string& b) {
  return emit(node("Add", "add", {a, b}));
}

std::string GraphBuilder::concat(const std::vector<std::string>& xs, int64_t axis) {
  auto n = node("Concat", "concat", xs);
  n.int_attrs["axis"] = axis;
  return emit(std::move(n));
}

std::string GraphBuilder::global_avg_pool(const std::string& x) {
  return emit(node("GlobalAveragePool", "pool", {x}));
}

std::string GraphBuilder::flatten(const std::string& x) {
  auto n = node("Flatten", "flatten", {x});
  n.int_attrs["axis"] = 1;
  return emit(std::move(n));
}

std::string GraphBuilder::gemm(const std::string& x, const torch::nn::LinearImpl& fc, const std::string& prefix) {
  auto n = node("Gemm", "gemm", {x, init(prefix + ".weight", fc.weight), init(prefix + ".bias", fc.bias)});
  n.int_attrs["transB"] = 1;
  return emit(std::move(n));
}

}  // namespace tl
