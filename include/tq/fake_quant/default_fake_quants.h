#pragma once
// The ready-made fake-quantizer constructors of torch/ao/quantization/fake_quantize.py, with the
// same arguments; each returns a factory that makes a fresh module per call.
#include "tq/fake_quant/fake_quantize.h"

namespace tq::fake_quant {

FakeQuantizeFactory default_fake_quant();                 // MovingAverage, quint8 [0, 255] reduce_range -> [0, 127]
FakeQuantizeFactory default_weight_fake_quant();          // MovingAverage, qint8 [-128, 127], per_tensor_symmetric
FakeQuantizeFactory default_dynamic_fake_quant();         // MovingAverage c=1, quint8 [0, 255], is_dynamic
FakeQuantizeFactory default_fixed_qparams_range_neg1to1_fake_quant();
FakeQuantizeFactory default_fixed_qparams_range_0to1_fake_quant();
FakeQuantizeFactory default_symmetric_fixed_qparams_fake_quant();  // = neg1to1
FakeQuantizeFactory default_affine_fixed_qparams_fake_quant();     // = 0to1
FakeQuantizeFactory default_per_channel_weight_fake_quant();       // qint8 per_channel_symmetric, ch_axis 0
FakeQuantizeFactory default_embedding_fake_quant();                // float qparams, quint8, c=1
FakeQuantizeFactory default_embedding_fake_quant_4bit();           // float qparams, quint4x2, c=1
FakeQuantizeFactory default_histogram_fake_quant();                // Histogram, quint8 [0, 255] reduce_range
FakeQuantizeFactory default_fused_act_fake_quant();
FakeQuantizeFactory default_fused_wt_fake_quant();
FakeQuantizeFactory default_fused_per_channel_wt_fake_quant();
FakeQuantizeFactory fused_wt_fake_quant_range_neg_127_to_127();
FakeQuantizeFactory fused_per_channel_wt_fake_quant_range_neg_127_to_127();

}  // namespace tq::fake_quant
