#include "sensitivity.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "progress.h"
#include "tq/core/atomic_file.h"
#include "tq/graph/graph_quantizer.h"

namespace tq::cli {
namespace {

at::Tensor output_of(torch::jit::Module& m, const at::Tensor& x) {
  auto v = m.forward({x});
  while (v.isTuple()) v = v.toTupleRef().elements()[0];
  return v.toTensor();
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

}  // namespace

double sqnr_db(const at::Tensor& ref, const at::Tensor& x) {
  const double signal = ref.pow(2).sum().item<double>();
  const double noise = (ref - x).pow(2).sum().item<double>();
  return 10.0 * std::log10(signal / std::max(noise, 1e-30));
}

std::vector<LayerSensitivity> layer_sensitivity(const torch::jit::Module& float_model,
                                                const graph::GraphQuantizeOptions& defaults,
                                                const std::vector<at::Tensor>& calibration,
                                                const std::vector<at::Tensor>& evaluation) {
  const auto qconfig = *defaults.mapping.global();
  // The layers: modules that hold a quantized op's output under the default configuration.
  auto probe = graph::prepare(float_model, defaults);
  for (const auto& b : calibration) probe.calibrate(b);
  std::vector<std::pair<std::string, std::string>> layers;
  std::set<std::string> seen;
  for (const auto& p : probe.summary().points) {
    if (p.kind == "output" && !p.module_path.empty() && seen.insert(p.module_path).second) {
      layers.emplace_back(p.module_path, p.op);
    }
  }
  at::NoGradGuard no_grad;
  auto reference = float_model.clone();
  reference.eval();
  std::vector<at::Tensor> float_out;
  for (const auto& x : evaluation) float_out.push_back(output_of(reference, x));
  const auto expected = at::cat(float_out);

  std::vector<LayerSensitivity> out;
  apps::ProgressBar bar("layers", static_cast<int64_t>(layers.size()));
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& [path, op] = layers[i];
    graph::GraphQuantizeOptions one = defaults;
    one.mapping = quant::QConfigMapping();  // no global qconfig: float unless named
    one.mapping.set_module_name(path, qconfig);
    for (const auto& [other, unused] : layers) {
      if (other.size() > path.size() && other.compare(0, path.size() + 1, path + ".") == 0) {
        one.mapping.set_module_name_none(other);
      }
    }
    auto observed = graph::prepare(float_model, one);
    for (const auto& b : calibration) observed.calibrate(b);
    auto q = observed.convert();
    std::vector<at::Tensor> outs;
    for (const auto& x : evaluation) outs.push_back(output_of(q, x));
    out.push_back({path, op, sqnr_db(expected, at::cat(outs))});
    bar.update(static_cast<int64_t>(i) + 1);
  }
  bar.finish();
  std::sort(out.begin(), out.end(),
            [](const LayerSensitivity& a, const LayerSensitivity& b) { return a.output_sqnr_db < b.output_sqnr_db; });
  return out;
}

void write_layer_svg(const std::string& title, const std::vector<std::pair<std::string, double>>& layers,
                     const std::string& path) {
  const int row = 18, label_w = 260, bar_w = 420, top = 40;
  const int height = top + row * static_cast<int>(layers.size()) + 30;
  double max_db = 1;
  for (const auto& l : layers) max_db = std::max(max_db, std::isfinite(l.second) ? l.second : 0.0);
  tq::write_atomically(path, "tq", [&](const std::string& tmp) {
    std::ofstream f(tmp);
    if (!f) throw std::runtime_error("cannot write " + path);
    f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << label_w + bar_w + 90 << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"10\" y=\"22\" font-size=\"14\">" << xml_escape(title) << "</text>\n";
    for (size_t i = 0; i < layers.size(); ++i) {
      const double db = std::isfinite(layers[i].second) ? layers[i].second : max_db;
      const int y = top + row * static_cast<int>(i);
      const int w = std::max(1, static_cast<int>(bar_w * std::max(0.0, db) / max_db));
      f << "<text x=\"" << label_w - 6 << "\" y=\"" << y + 13 << "\" text-anchor=\"end\">"
        << xml_escape(layers[i].first) << "</text>\n"
        << "<rect x=\"" << label_w << "\" y=\"" << y + 2 << "\" width=\"" << w << "\" height=\"" << row - 4
        << "\" fill=\"" << (i < 3 ? "#d9534f" : "#4a90d9") << "\"/>\n"
        << "<text x=\"" << label_w + w + 4 << "\" y=\"" << y + 13 << "\">" << static_cast<int>(std::round(db * 10)) / 10.0
        << "</text>\n";
    }
    f << "</svg>\n";
  });
}

}  // namespace tq::cli
