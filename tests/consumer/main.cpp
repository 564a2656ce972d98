// Uses an installed tq: an observer's qparams for a known range (hand-derived: [-1, 3] on quint8
// gives scale 4/255 and zero point 64).
#include <ATen/ATen.h>

#include <cmath>
#include <iostream>

#include "tq/observers/min_max_observer.h"

int main() {
  tq::observers::MinMaxObserver obs{tq::observers::MinMaxObserverOptions()};
  obs.forward(at::tensor({-1.0f, 0.5f, 3.0f}));
  const auto qp = obs.calculate_qparams();
  const float scale = qp.scale.item<float>();
  const int64_t zp = qp.zero_point.item<int64_t>();
  const bool ok = std::fabs(scale - 4.0f / 255.0f) < 1e-9f && zp == 64;
  std::cout << "installed tq: scale " << scale << ", zero point " << zp << (ok ? " (as expected)" : " (WRONG)") << "\n";
  return ok ? 0 : 1;
}
