// ModelDef <-> ONNX ModelProto, with ONNX's own protobuf messages and checker. Compiled without
// LibTorch's include folders (onnx_model.h says why): no LibTorch or tq header that includes one.
#include "onnx_model.h"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>

#include <stdexcept>

namespace tq::onnx::detail {

const Attribute* NodeDef::attribute(const std::string& n) const {
  for (const auto& a : attributes) {
    if (a.name == n) return &a;
  }
  return nullptr;
}

const TensorDef* ModelDef::initializer(const std::string& n) const {
  for (const auto& t : initializers) {
    if (t.name == n) return &t;
  }
  return nullptr;
}

namespace {

void write_value(const ValueDef& v, ::onnx::ValueInfoProto* p) {
  p->set_name(v.name);
  auto* t = p->mutable_type()->mutable_tensor_type();
  t->set_elem_type(static_cast<int>(v.type));
  if (!v.has_shape) return;
  auto* shape = t->mutable_shape();
  for (const auto& d : v.dims) {
    auto* dim = shape->add_dim();
    if (!d.empty() && d.find_first_not_of("0123456789") == std::string::npos) {
      dim->set_dim_value(std::stoll(d));
    } else {
      dim->set_dim_param(d);
    }
  }
}

ValueDef read_value(const ::onnx::ValueInfoProto& p) {
  ValueDef v;
  v.name = p.name();
  const auto& t = p.type().tensor_type();
  v.type = static_cast<ElemType>(t.elem_type());
  v.has_shape = t.has_shape();
  for (const auto& d : t.shape().dim()) v.dims.push_back(d.has_dim_param() ? d.dim_param() : std::to_string(d.dim_value()));
  return v;
}

}  // namespace

std::string serialize(const ModelDef& m, bool check) {
  ::onnx::ModelProto model;
  model.set_ir_version(m.ir_version);
  model.set_producer_name(m.producer);
  model.set_producer_version(m.producer_version);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(m.opset);
  auto* g = model.mutable_graph();
  g->set_name(m.graph_name);
  for (const auto& v : m.inputs) write_value(v, g->add_input());
  for (const auto& v : m.outputs) write_value(v, g->add_output());
  for (const auto& t : m.initializers) {
    auto* p = g->add_initializer();
    p->set_name(t.name);
    p->set_data_type(static_cast<int>(t.type));
    for (auto d : t.dims) p->add_dims(d);
    p->set_raw_data(t.raw);
  }
  for (const auto& n : m.nodes) {
    auto* p = g->add_node();
    p->set_op_type(n.op_type);
    p->set_name(n.name);
    for (const auto& i : n.inputs) p->add_input(i);
    for (const auto& o : n.outputs) p->add_output(o);
    for (const auto& a : n.attributes) {
      auto* pa = p->add_attribute();
      pa->set_name(a.name);
      switch (a.kind) {
        case Attribute::Kind::kInt:
          pa->set_type(::onnx::AttributeProto::INT);
          pa->set_i(a.i);
          break;
        case Attribute::Kind::kInts:
          pa->set_type(::onnx::AttributeProto::INTS);
          for (auto x : a.ints) pa->add_ints(x);
          break;
        case Attribute::Kind::kFloat:
          pa->set_type(::onnx::AttributeProto::FLOAT);
          pa->set_f(a.f);
          break;
        case Attribute::Kind::kString:
          pa->set_type(::onnx::AttributeProto::STRING);
          pa->set_s(a.s);
          break;
      }
    }
  }
  if (check) ::onnx::checker::check_model(model);  // throws ValidationError (a std::runtime_error)
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw std::runtime_error("protobuf could not serialize the model");
  return bytes;
}

std::string serialize_tensor(const TensorDef& t) {
  ::onnx::TensorProto p;
  p.set_name(t.name);
  p.set_data_type(static_cast<int>(t.type));
  for (auto d : t.dims) p.add_dims(d);
  p.set_raw_data(t.raw);
  std::string bytes;
  if (!p.SerializeToString(&bytes)) throw std::runtime_error("protobuf could not serialize the tensor");
  return bytes;
}

ModelDef parse(const std::string& bytes) {
  ::onnx::ModelProto model;
  if (!model.ParseFromString(bytes)) throw std::runtime_error("not an ONNX ModelProto");
  ModelDef m;
  m.ir_version = model.ir_version();
  m.opset = model.opset_import_size() > 0 ? model.opset_import(0).version() : 0;
  m.producer = model.producer_name();
  m.producer_version = model.producer_version();
  const auto& g = model.graph();
  m.graph_name = g.name();
  for (const auto& v : g.input()) m.inputs.push_back(read_value(v));
  for (const auto& v : g.output()) m.outputs.push_back(read_value(v));
  for (const auto& t : g.initializer()) {
    TensorDef d;
    d.name = t.name();
    d.type = static_cast<ElemType>(t.data_type());
    d.dims.assign(t.dims().begin(), t.dims().end());
    d.raw = t.raw_data();
    m.initializers.push_back(std::move(d));
  }
  for (const auto& n : g.node()) {
    NodeDef d;
    d.op_type = n.op_type();
    d.name = n.name();
    d.inputs.assign(n.input().begin(), n.input().end());
    d.outputs.assign(n.output().begin(), n.output().end());
    for (const auto& a : n.attribute()) {
      Attribute x;
      x.name = a.name();
      if (a.type() == ::onnx::AttributeProto::INTS) {
        x.kind = Attribute::Kind::kInts;
        x.ints.assign(a.ints().begin(), a.ints().end());
      } else if (a.type() == ::onnx::AttributeProto::FLOAT) {
        x.kind = Attribute::Kind::kFloat;
        x.f = a.f();
      } else if (a.type() == ::onnx::AttributeProto::STRING) {
        x.kind = Attribute::Kind::kString;
        x.s = a.s();
      } else {
        x.i = a.i();
      }
      d.attributes.push_back(std::move(x));
    }
    m.nodes.push_back(std::move(d));
  }
  return m;
}

int64_t checker_max_opset() {
  const auto& map = ::onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  auto it = map.find("");
  return it == map.end() ? 0 : it->second.second;
}

}  // namespace tq::onnx::detail
