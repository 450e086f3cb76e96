// Reading pytorch_model.bin (torch.save's zip format) through libtorch's own unpickler, and
// choosing which weight file of a model folder to read.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import_read.h>

#include "qexp/distilbert.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/safetensors.h"

namespace qexp {
namespace {

std::string first_line(const std::string& text) {
  auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

}  // namespace

std::shared_ptr<torch_checkpoint_file> torch_checkpoint_file::open(
    const std::filesystem::path& path) {
  const std::string file = path.string();
  if (const auto problem = regular_file_problem(path); !problem.empty()) throw checkpoint_error(file + ": " + problem);
  c10::IValue root;
  try {
    // torch.save (since 1.6) writes a zip archive "<name>/data.pkl" + "<name>/data/<key>";
    // the reader strips "<name>/", which is what the "data" archive name below refers to.
    caffe2::serialize::PyTorchStreamReader reader(file);
    root = torch::jit::readArchiveAndTensors("data", "", "", c10::nullopt, c10::nullopt,
                                             at::Device(at::kCPU), reader);
  } catch (const std::exception& e) {
    throw checkpoint_error(file + ": libtorch cannot read this as a torch.save zip checkpoint "
                           "(legacy non-zip torch.save files and pickled modules are not "
                           "supported; re-save it as model.safetensors): " + first_line(e.what()));
  }
  if (!root.isGenericDict())
    throw checkpoint_error(file + ": expected a dict of tensor names to tensors, found " +
                           root.tagKind());
  auto result = std::shared_ptr<torch_checkpoint_file>(new torch_checkpoint_file());
  result->path_ = path;
  for (const auto& item : root.toGenericDict()) {
    if (!item.key().isString())
      throw checkpoint_error(file + ": expected string keys in the state dict, found " +
                             item.key().tagKind());
    const std::string name = item.key().toStringRef();
    if (!item.value().isTensor())
      throw checkpoint_error(file + ": entry '" + name + "' is " + item.value().tagKind() +
                             "; expected a tensor");
    result->order_.push_back(name);
    result->tensors_[name] = item.value().toTensor();
  }
  return result;
}

bool torch_checkpoint_file::has_tensor(const std::string& name) const {
  return tensors_.count(name) != 0;
}

at::Tensor torch_checkpoint_file::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw checkpoint_error(path_.string() + ": tensor '" + name + "' not found (the file has " +
                           std::to_string(tensors_.size()) + " tensors)");
  return it->second;
}

std::vector<std::string> torch_checkpoint_file::names() const { return order_; }

std::shared_ptr<tensor_reader> open_model_weights(const std::filesystem::path& dir,
                                                  std::filesystem::path* chosen) {
  const auto safetensors = dir / "model.safetensors";
  const auto torch_bin = dir / "pytorch_model.bin";
  if (std::filesystem::exists(safetensors)) {
    if (chosen) *chosen = safetensors;
    return safetensors_file::open(safetensors);
  }
  if (std::filesystem::exists(torch_bin)) {
    if (chosen) *chosen = torch_bin;
    return torch_checkpoint_file::open(torch_bin);
  }
  throw checkpoint_error(dir.string() +
                         ": no weights found; expected model.safetensors or pytorch_model.bin");
}

}  // namespace qexp
