// a2's CPU accelerator: 2-D convolution forward, backward-data and backward-weights through
// oneDNN, on float32 buffers the caller owns (tfjs wasm heap views), channels-last (NHWC)
// activations and HWIO filters, as tfjs lays them out. Primitives are cached by shape.
#include <napi.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

engine& cpuEngine() {
  static engine e(engine::kind::cpu, 0);
  return e;
}

stream& cpuStream() {
  static stream s(cpuEngine());
  return s;
}

struct Geometry {
  memory::dims src, weights, dst, strides, dilation, padL, padR;
};

// Args: shapes as arrays: x [N,H,W,C], filter [kh,kw,Ci,Co], y [N,Ho,Wo,Co],
// strides [sh,sw], dilations [dh,dw] (tfjs: 1 = dense), pads [top,left,bottom,right].
Geometry geometry(const Napi::Object& g) {
  auto dims = [&](const char* key) {
    Napi::Array a = g.Get(key).As<Napi::Array>();
    memory::dims d;
    for (uint32_t i = 0; i < a.Length(); i++) d.push_back(a.Get(i).As<Napi::Number>().Int64Value());
    return d;
  };
  memory::dims x = dims("x"), f = dims("filter"), y = dims("y"), s = dims("strides"), dl = dims("dilations"), p = dims("pads");
  Geometry out;
  out.src = {x[0], x[3], x[1], x[2]};      // logical NCHW
  out.weights = {f[3], f[2], f[0], f[1]};  // logical OIHW
  out.dst = {y[0], y[3], y[1], y[2]};
  out.strides = {s[0], s[1]};
  out.dilation = {dl[0] - 1, dl[1] - 1};   // oneDNN counts the gaps
  out.padL = {p[0], p[1]};
  out.padR = {p[2], p[3]};
  return out;
}

std::string keyOf(const char* kind, const Geometry& g) {
  std::ostringstream k;
  k << kind;
  for (auto* d : {&g.src, &g.weights, &g.dst, &g.strides, &g.dilation, &g.padL, &g.padR})
    for (auto v : *d) k << ',' << v;
  return k.str();
}

// Runs a binding's body, turning oneDNN's exceptions into JavaScript errors.
template <typename Body>
Napi::Value guarded(const Napi::CallbackInfo& info, Body body) {
  try {
    return body(info.Env());
  } catch (const dnnl::error& e) {
    Napi::Error::New(info.Env(), std::string("oneDNN: ") + e.what()).ThrowAsJavaScriptException();
    return info.Env().Null();
  }
}

float* dataOf(const Napi::Value& v) {
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  return a.Data();
}

// Each cached entry owns the primitive and the weights layout it wants.
struct Cached {
  primitive prim;
  memory::desc userWeights, primWeights;  // hwio as given, and the layout the primitive chose
  std::string impl;
};

std::unordered_map<std::string, std::unique_ptr<Cached>> cache;

convolution_forward::desc forwardDesc(const Geometry& g, prop_kind kind) {
  return convolution_forward::desc(kind, algorithm::convolution_direct,
      memory::desc(g.src, dt::f32, tag::nhwc), memory::desc(g.weights, dt::f32, tag::any),
      memory::desc(g.dst, dt::f32, tag::nhwc), g.strides, g.dilation, g.padL, g.padR);
}

Cached& getCached(const char* kind, const Geometry& g) {
  std::string key = keyOf(kind, g);
  auto found = cache.find(key);
  if (found != cache.end()) return *found->second;
  auto& eng = cpuEngine();
  auto entry = std::make_unique<Cached>();
  entry->userWeights = memory::desc(g.weights, dt::f32, tag::hwio);
  std::string k(kind);
  auto fwdPd = convolution_forward::primitive_desc(forwardDesc(g, prop_kind::forward_training), eng);
  if (k == "forward") {
    entry->prim = convolution_forward(fwdPd);
    entry->primWeights = fwdPd.weights_desc();
    entry->impl = fwdPd.impl_info_str();
  } else if (k == "backwardData") {
    convolution_backward_data::desc d(algorithm::convolution_direct,
        memory::desc(g.src, dt::f32, tag::nhwc), memory::desc(g.weights, dt::f32, tag::any),
        memory::desc(g.dst, dt::f32, tag::nhwc), g.strides, g.dilation, g.padL, g.padR);
    auto pd = convolution_backward_data::primitive_desc(d, eng, fwdPd);
    entry->prim = convolution_backward_data(pd);
    entry->primWeights = pd.weights_desc();
    entry->impl = pd.impl_info_str();
  } else {
    convolution_backward_weights::desc d(algorithm::convolution_direct,
        memory::desc(g.src, dt::f32, tag::nhwc), memory::desc(g.weights, dt::f32, tag::any),
        memory::desc(g.dst, dt::f32, tag::nhwc), g.strides, g.dilation, g.padL, g.padR);
    auto pd = convolution_backward_weights::primitive_desc(d, eng, fwdPd);
    entry->prim = convolution_backward_weights(pd);
    entry->primWeights = pd.diff_weights_desc();
    entry->impl = pd.impl_info_str();
  }
  auto& ref = *entry;
  cache.emplace(key, std::move(entry));
  return ref;
}

// conv(kind, geometry, x|dx, filter|dW, y|dy): kind is forward, backwardData or backwardWeights;
// the buffer that kind writes is overwritten. Returns the oneDNN implementation's name.
Napi::Value Conv(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    std::string kind = info[0].As<Napi::String>().Utf8Value();
    Geometry g = geometry(info[1].As<Napi::Object>());
    float* x = dataOf(info[2]);
    float* w = dataOf(info[3]);
    float* y = dataOf(info[4]);
    Cached& c = getCached(kind.c_str(), g);
    auto& eng = cpuEngine();
    auto& strm = cpuStream();
    memory src(memory::desc(g.src, dt::f32, tag::nhwc), eng, x);
    memory dst(memory::desc(g.dst, dt::f32, tag::nhwc), eng, y);
    memory userW(c.userWeights, eng, w);
    bool reorderW = c.primWeights != c.userWeights;
    memory primW = reorderW ? memory(c.primWeights, eng) : userW;
    if (kind == "forward") {
      if (reorderW) reorder(userW, primW).execute(strm, userW, primW);
      c.prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, primW}, {DNNL_ARG_DST, dst}});
    } else if (kind == "backwardData") {
      if (reorderW) reorder(userW, primW).execute(strm, userW, primW);
      c.prim.execute(strm, {{DNNL_ARG_DIFF_SRC, src}, {DNNL_ARG_WEIGHTS, primW}, {DNNL_ARG_DIFF_DST, dst}});
    } else {
      c.prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_WEIGHTS, primW}, {DNNL_ARG_DIFF_DST, dst}});
      if (reorderW) reorder(primW, userW).execute(strm, primW, userW);
    }
    strm.wait();
    return Napi::String::New(env, c.impl);
  });
}

// Batch normalisation in training mode over N·H·W of an NHWC tensor, per channel C.
struct CachedNorm {
  batch_normalization_forward::primitive_desc fwd;
  primitive forward, backward;
};
std::unordered_map<std::string, std::unique_ptr<CachedNorm>> normCache;

CachedNorm& getNorm(const memory::dims& nchw, float eps) {
  std::ostringstream k;
  k << eps;
  for (auto v : nchw) k << ',' << v;
  auto found = normCache.find(k.str());
  if (found != normCache.end()) return *found->second;
  auto& eng = cpuEngine();
  auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
  memory::desc data(nchw, dt::f32, tag::nhwc);
  auto entry = std::make_unique<CachedNorm>();
  entry->fwd = batch_normalization_forward::primitive_desc(
      batch_normalization_forward::desc(prop_kind::forward_training, data, eps, flags), eng);
  entry->forward = batch_normalization_forward(entry->fwd);
  auto bwd = batch_normalization_backward::primitive_desc(
      batch_normalization_backward::desc(prop_kind::backward, data, data, eps, flags), eng, entry->fwd);
  entry->backward = batch_normalization_backward(bwd);
  auto& ref = *entry;
  normCache.emplace(k.str(), std::move(entry));
  return ref;
}

// batchNorm("forward", [N,H,W,C], eps, x, scale, shift, y, mean, variance): writes y, mean and
// the biased variance. batchNorm("backward", shape, eps, x, scale, shift, dy, dx, mean,
// variance, dScale, dShift): writes dx, dScale, dShift.
Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    std::string kind = info[0].As<Napi::String>().Utf8Value();
    Napi::Array shape = info[1].As<Napi::Array>();
    memory::dims nhwc;
    for (uint32_t i = 0; i < 4; i++) nhwc.push_back(shape.Get(i).As<Napi::Number>().Int64Value());
    memory::dims nchw = {nhwc[0], nhwc[3], nhwc[1], nhwc[2]};
    float eps = info[2].As<Napi::Number>().FloatValue();
    CachedNorm& c = getNorm(nchw, eps);
    auto& eng = cpuEngine();
    auto& strm = cpuStream();
    memory::desc data(nchw, dt::f32, tag::nhwc);
    memory::desc channel({nhwc[3]}, dt::f32, tag::a);
    auto mem = [&](const memory::desc& d, int arg) { return memory(d, eng, dataOf(info[arg])); };
    if (kind == "forward") {
      c.forward.execute(strm, {{DNNL_ARG_SRC, mem(data, 3)}, {DNNL_ARG_SCALE, mem(channel, 4)}, {DNNL_ARG_SHIFT, mem(channel, 5)},
          {DNNL_ARG_DST, mem(data, 6)}, {DNNL_ARG_MEAN, mem(channel, 7)}, {DNNL_ARG_VARIANCE, mem(channel, 8)}});
    } else {
      c.backward.execute(strm, {{DNNL_ARG_SRC, mem(data, 3)}, {DNNL_ARG_SCALE, mem(channel, 4)}, {DNNL_ARG_SHIFT, mem(channel, 5)},
          {DNNL_ARG_DIFF_DST, mem(data, 6)}, {DNNL_ARG_DIFF_SRC, mem(data, 7)}, {DNNL_ARG_MEAN, mem(channel, 8)},
          {DNNL_ARG_VARIANCE, mem(channel, 9)}, {DNNL_ARG_DIFF_SCALE, mem(channel, 10)}, {DNNL_ARG_DIFF_SHIFT, mem(channel, 11)}});
    }
    strm.wait();
    return env.Undefined();
  });
}

// Max-pool gradient. tfjs's MaxPoolGrad gets x, not the argmax, so the forward pass runs
// again (in oneDNN, for its workspace of argmax positions) and the backward pass scatters dy.
struct CachedPool {
  pooling_forward::primitive_desc fwd;
  primitive forward, backward;
};
std::unordered_map<std::string, std::unique_ptr<CachedPool>> poolCache;

// maxPoolGrad(geometry {x, y, kernel, strides, pads}, x, dy, dx): writes dx.
Napi::Value MaxPoolGrad(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    Napi::Object g = info[0].As<Napi::Object>();
    auto dims = [&](const char* key) {
      Napi::Array a = g.Get(key).As<Napi::Array>();
      memory::dims d;
      for (uint32_t i = 0; i < a.Length(); i++) d.push_back(a.Get(i).As<Napi::Number>().Int64Value());
      return d;
    };
    memory::dims x = dims("x"), y = dims("y"), k = dims("kernel"), st = dims("strides"), p = dims("pads");
    memory::desc src({x[0], x[3], x[1], x[2]}, dt::f32, tag::nhwc), dst({y[0], y[3], y[1], y[2]}, dt::f32, tag::nhwc);
    std::ostringstream key;
    for (auto* d : {&x, &y, &k, &st, &p}) for (auto v : *d) key << v << ',';
    auto& eng = cpuEngine();
    auto found = poolCache.find(key.str());
    if (found == poolCache.end()) {
      auto entry = std::make_unique<CachedPool>();
      memory::dims padL = {p[0], p[1]}, padR = {p[2], p[3]};
      entry->fwd = pooling_forward::primitive_desc(pooling_forward::desc(prop_kind::forward_training, algorithm::pooling_max, src, dst, st, k, padL, padR), eng);
      entry->forward = pooling_forward(entry->fwd);
      auto bwd = pooling_backward::primitive_desc(pooling_backward::desc(algorithm::pooling_max, src, dst, st, k, padL, padR), eng, entry->fwd);
      entry->backward = pooling_backward(bwd);
      found = poolCache.emplace(key.str(), std::move(entry)).first;
    }
    CachedPool& c = *found->second;
    auto& strm = cpuStream();
    memory workspace(c.fwd.workspace_desc(), eng), pooled(dst, eng);
    c.forward.execute(strm, {{DNNL_ARG_SRC, memory(src, eng, dataOf(info[1]))}, {DNNL_ARG_DST, pooled}, {DNNL_ARG_WORKSPACE, workspace}});
    c.backward.execute(strm, {{DNNL_ARG_DIFF_DST, memory(dst, eng, dataOf(info[2]))}, {DNNL_ARG_DIFF_SRC, memory(src, eng, dataOf(info[3]))}, {DNNL_ARG_WORKSPACE, workspace}});
    strm.wait();
    return env.Undefined();
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("maxPoolGrad", Napi::Function::New(env, MaxPoolGrad));
  exports.Set("conv", Napi::Function::New(env, Conv));
  exports.Set("batchNorm", Napi::Function::New(env, BatchNorm));
  exports.Set("version", Napi::String::New(env, std::to_string(dnnl_version()->major) + "." + std::to_string(dnnl_version()->minor) + "." + std::to_string(dnnl_version()->patch)));
  return exports;
}

}  // namespace

NODE_API_MODULE(a2_onednn, Init)
