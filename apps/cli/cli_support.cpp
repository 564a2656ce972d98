#include "cli_support.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tq/core/atomic_file.h"
#include "tq/core/error_message.h"
#include "tq/kernels/int8_saturation.h"
#include "tq/quant/qconfig_spec.h"

namespace tq::cli {

namespace fs = std::filesystem;

const std::vector<std::string>& engines() {
  static const std::vector<std::string> names = {"onednn", "qnnpack", "x86", "fbgemm"};
  return names;
}

torch::jit::Module load_model(const std::string& path) {
  try {
    return tq::graph::load_torchscript(path);
  } catch (const std::exception& e) {
    throw BadInput(tq::error_message(e));
  }
}

void check_output_path(const std::string& out, const std::vector<std::string>& inputs, bool force) {
  std::error_code ec;
  if (fs::is_directory(out, ec)) throw UsageError("output " + out + " is a directory");
  for (const auto& in : inputs) {
    if (fs::exists(out, ec) && fs::equivalent(out, in, ec)) throw UsageError("output " + out + " is the input model");
  }
  if (fs::exists(out, ec) && !force) throw UsageError("output " + out + " exists (use --force to replace it)");
  const auto parent = fs::path(out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec)) throw UsageError("no such directory: " + parent.string());
}

void write_json(const nlohmann::json& j, const std::string& path) {
  tq::write_atomically(path, "tq", [&](const std::string& tmp) {
    std::ofstream f(tmp);
    if (!f) throw std::runtime_error("cannot open " + tmp);
    f << j.dump(2) << "\n";
    f.close();
    if (!f) throw std::runtime_error("write failed");
  });
}

nlohmann::json summary_json(const tq::graph::Summary& s) {
  nlohmann::json nodes = nlohmann::json::array(), points = nlohmann::json::array();
  for (const auto& e : s.nodes) {
    nlohmann::json n = {{"op", e.op}, {"module", e.module_path}, {"quantized", e.quantized}};
    if (!e.handler.empty()) n["handler"] = e.handler;
    if (!e.why_float.empty()) n["why_float"] = e.why_float;
    if (e.has_qparams) n["qparams"] = {{"scale", e.qparams.scale}, {"zero_point", e.qparams.zero_point}};
    nodes.push_back(n);
  }
  for (const auto& p : s.points) {
    points.push_back({{"kind", p.kind}, {"op", p.op}, {"module", p.module_path}, {"scale", p.qparams.scale},
                      {"zero_point", p.qparams.zero_point}});
  }
  return {{"quantized_nodes", s.quantized_count()}, {"nodes", nodes}, {"quantization_points", points}};
}

at::Tensor first_tensor(const c10::IValue& v) {
  if (v.isTensor()) return v.toTensor();
  if (v.isTuple() && !v.toTupleRef().elements().empty()) return first_tensor(v.toTupleRef().elements()[0]);
  if (v.isList() && !v.toListRef().empty()) return first_tensor(v.toListRef()[0]);
  throw std::runtime_error("the model's output is not a tensor");
}

c10::IValue run_model(torch::jit::Module& m, const at::Tensor& x, const std::string& what) {
  try {
    return m.forward({x});
  } catch (const std::exception& e) {
    std::ostringstream s;
    s << what << ": the model failed on input of shape " << x.sizes() << ": " << tq::error_message(e);
    throw BadInput(s.str());
  }
}

graph::GraphQuantizeOptions tool_options(const std::string& engine, bool full_range) {
  tq::graph::GraphQuantizeOptions o;
  tq::quant::QConfigSpec c;
  c.reduce_range = tq::kernels::int8::choose_activation_range(engine, full_range).reduce_range;
  o.mapping.set_global(tq::quant::make_qconfig(engine, c));
  return o;
}

void add_data_options(CLI::App* cmd, tq::cli::DataOptions& d) {
  cmd->add_option("--labels", d.labels, "IDX labels file (image folders give labels by sub-folder)");
  cmd->add_option("--resize", d.resize, "images: resize the shorter side to this")->check(CLI::NonNegativeNumber);
  cmd->add_option("--center-crop", d.center_crop, "images: square center crop")->check(CLI::NonNegativeNumber);
  cmd->add_option("--channels", d.channels, "images: 1 (grey) or 3 (RGB)")->check(CLI::IsMember({1, 3}));
  cmd->add_option("--mean", d.mean, "per-channel mean (images: ImageNet's by default)");
  cmd->add_option("--std", d.std, "per-channel std (images: ImageNet's by default)");
  cmd->add_flag("--normalize-idx", d.normalize_idx, "IDX: apply --mean / --std after scaling to [0, 1]");
  cmd->add_flag("--skip-bad", d.skip_bad, "skip unreadable images (counted) instead of failing");
  cmd->add_option("--limit", d.limit, "use at most this many samples")->check(CLI::NonNegativeNumber);
}

}  // namespace tq::cli
