// a2's CPU accelerator, on float32 buffers the caller owns (tfjs wasm heap views), channels-last
// (NHWC) activations and HWIO filters, as tfjs lays them out: 2-D convolutions (forward and both
// gradients), batch norm and max-pooling through oneDNN, primitives cached by shape; and a few
// reductions and elementwise passes in OpenMP loops, with the bits of the one-core kernels they
// replace. Every call runs on the JS thread, so the scratch buffers below are never shared.
#include <napi.h>
#include <oneapi/dnnl/dnnl.hpp>

// The 2.x C++ API (op descriptors) from 2.6 on: bf16 brgconv on AMX arrived there, and 3.x
// removed the op descriptors this file builds primitives from.
#if DNNL_VERSION_MAJOR != 2 || DNNL_VERSION_MINOR < 6
#error "a2's accelerator needs oneDNN 2.6 to 2.x (Debian 12: apt-get install libdnnl-dev); this oneDNN is another version"
#endif

#include <algorithm>
#include <limits>
#include <memory>
#include <stdexcept>
#include <sstream>
#include <string>
#include <cmath>
#include <cstring>
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

// An array of numbers, e.g. a shape [N, H, W, C].
memory::dims dimsOf(const Napi::Value& array) {
  Napi::Array a = array.As<Napi::Array>();
  memory::dims d;
  for (uint32_t i = 0; i < a.Length(); i++) d.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  return d;
}

// One shape of a geometry object, e.g. g.x.
memory::dims dimsOf(const Napi::Object& g, const char* key) {
  return dimsOf(g.Get(key));
}

// A process sees few shapes (a net's layers at one or two batch sizes). The cap only stops one that
// meets ever-new shapes from keeping every primitive it built: at the cap a cache is emptied (a
// rebuild costs a few ms a primitive), not evicted entry by entry. Entries are looked up and used
// within one call, so emptying a cache before an insert never frees one in use.
constexpr size_t kMaxCachedPrimitives = 256;

template <typename T>
T& remember(std::unordered_map<std::string, std::unique_ptr<T>>& cache, const std::string& key, std::unique_ptr<T> entry) {
  if (cache.size() >= kMaxCachedPrimitives) cache.clear();
  return *cache.emplace(key, std::move(entry)).first->second;
}

// Args: shapes as arrays: x [N,H,W,C], filter [kh,kw,Ci,Co], y [N,Ho,Wo,Co],
// strides [sh,sw], dilations [dh,dw] (tfjs: 1 = dense), pads [top,left,bottom,right].
Geometry geometry(const Napi::Object& g) {
  memory::dims x = dimsOf(g, "x"), f = dimsOf(g, "filter"), y = dimsOf(g, "y"), s = dimsOf(g, "strides"), dl = dimsOf(g, "dilations"),
               p = dimsOf(g, "pads");
  if (x.size() != 4 || f.size() != 4 || y.size() != 4 || s.size() != 2 || dl.size() != 2 || p.size() != 4)
    throw std::invalid_argument("conv geometry: expected x, filter, y of 4 dims, strides and dilations of 2, pads of 4");
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
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
  } catch (const std::exception& e) {
    Napi::Error::New(info.Env(), std::string("a2 oneDNN addon: ") + e.what()).ThrowAsJavaScriptException();
  } catch (...) {
    Napi::Error::New(info.Env(), "a2 oneDNN addon: unknown C++ exception").ThrowAsJavaScriptException();
  }
  return info.Env().Null();
}

// A typed array argument of the given element type (Napi's array class A), of any length.
template <typename A>
A typedOf(const Napi::Value& v, napi_typedarray_type type, const char* typeName, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw std::invalid_argument(std::string(what) + ": expected a " + typeName);
  return v.As<A>();
}

// A Float32Array argument of any length (its length then gives the other buffers' sizes).
Napi::Float32Array float32Of(const Napi::Value& v, const char* what) {
  return typedOf<Napi::Float32Array>(v, napi_float32_array, "Float32Array", what);
}

// A Float32Array argument, checked to hold exactly the elements its dims say.
float* dataOf(const Napi::Value& v, const memory::dims& dims, const char* what) {
  Napi::Float32Array a = float32Of(v, what);
  int64_t expected = 1;
  for (auto d : dims) {
    if (d < 0) throw std::invalid_argument(std::string(what) + ": negative dimension");
    expected *= d;
  }
  if (static_cast<int64_t>(a.ElementLength()) != expected)
    throw std::invalid_argument(std::string(what) + ": expected " + std::to_string(expected) + " floats for its dims, found " +
                                std::to_string(a.ElementLength()));
  return a.Data();
}

// One operand of a primitive: the f32 buffer tfjs owns (NHWC activations, HWIO filters) and,
// where the primitive wants another type or layout, a scratch buffer plus cached reorders.
// Where it wants plain NHWC bf16, the caller may lend a buffer of its own for the bf16 copy
// (filled here, or already filled by an earlier call on the same tensor), so that one tensor is
// converted once for the two convolutions that read it.
struct Operand {
  memory::desc user, prim;
  std::unique_ptr<reorder> toPrim, toUser;
  std::unique_ptr<memory> scratch;
  bool plainBf16 = false;

  void init(const memory::desc& userDesc, const memory::desc& primDesc, bool in, bool out) {
    user = userDesc;
    prim = primDesc;
    if (user == prim) return;
    auto& eng = cpuEngine();
    plainBf16 = in && prim == memory::desc(user.dims(), dt::bf16, tag::nhwc);
    scratch = std::make_unique<memory>(prim, eng);
    if (in) toPrim = std::make_unique<reorder>(reorder::primitive_desc(eng, user, eng, prim));
    if (out) toUser = std::make_unique<reorder>(reorder::primitive_desc(eng, prim, eng, user));
  }
  // The memory the primitive reads or writes; an input is converted into it first, unless `copy`
  // (a lent bf16 buffer, used only where the primitive reads plain NHWC bf16) already holds it.
  // `lent` says whether the lent buffer was used.
  memory bind(float* data, uint16_t* copy = nullptr, bool copyReady = false, bool* lent = nullptr) {
    memory userMem(user, cpuEngine(), data);
    if (!scratch) return userMem;
    if (copy && plainBf16) {
      memory copyMem(prim, cpuEngine(), copy);
      if (!copyReady) toPrim->execute(cpuStream(), userMem, copyMem);
      if (lent) *lent = true;
      return copyMem;
    }
    if (toPrim) toPrim->execute(cpuStream(), userMem, *scratch);
    return *scratch;
  }
  void writeBack(float* data) {
    if (!toUser) return;
    memory userMem(user, cpuEngine(), data);
    toUser->execute(cpuStream(), *scratch, userMem);
  }
};

// The weight gradient of a bf16 convolution over a small image as one matmul: each output pixel's
// input patch in a row (im2col), then dW[(kh,kw,c), o] = Σ_rows patch[row, (kh,kw,c)] · dy[row, o],
// which lands in tfjs's HWIO layout. oneDNN 2.6's AMX kernel for the weight gradient runs at
// 80-170 GFLOP/s on 3×3 to 8×8 images here (its parallel work is the image), the matmul at ~400.
struct Im2col {
  int64_t kh, kw, rows, patch;
  std::unique_ptr<memory> columns;  // [rows, patch] bf16
  primitive matmul;
  memory::desc patchesT, grads, weights;
};
constexpr int64_t kIm2colMaxPixels = 64;  // output images up to 8×8: measured faster there, slower at 15×15

// The data gradient of a stride-1 bf16 convolution as a forward convolution of dy with the filter
// flipped in space and its channel roles swapped (padding K−1−p): oneDNN 2.6's forward kernel
// (brgconv) runs it at about twice the rate of its backward-data kernel on the nets here.
struct FlippedFilter {
  int64_t kh, kw, in, out;
  std::vector<float> filter;  // [kh][kw][out][in], both spatial axes reversed: HWIO of the swapped roles

  // Fills `filter` from tfjs's HWIO filter [kh][kw][in][out]; returns it.
  float* from(const float* hwio) {
    int64_t tap = in * out;
    for (int64_t i = 0; i < kh; i++)
      for (int64_t j = 0; j < kw; j++) {
        const float* source = hwio + ((kh - 1 - i) * kw + (kw - 1 - j)) * tap;
        float* target = filter.data() + (i * kw + j) * tap;
        for (int64_t ci = 0; ci < in; ci++)
          for (int64_t co = 0; co < out; co++) target[co * in + ci] = source[ci * out + co];
      }
    return filter.data();
  }
};

// Each cached entry owns the primitive and its three operands (x|dx, filter|dW, y|dy).
struct Cached {
  primitive prim;
  Operand x, w, y;
  std::string impl;
  std::unique_ptr<Im2col> im2col;          // instead of prim, for a small image's weight gradient in bf16
  std::unique_ptr<FlippedFilter> flipped;  // prim is then the forward convolution computing dx
};

// The im2col plan for a weight gradient, or null where it does not apply or oneDNN has no fast matmul.
std::unique_ptr<Im2col> im2colPlan(const Geometry& g) {
  bool dense = g.dilation[0] == 0 && g.dilation[1] == 0;
  if (!dense || g.dst[2] * g.dst[3] > kIm2colMaxPixels) return nullptr;
  auto plan = std::make_unique<Im2col>();
  plan->kh = g.weights[2], plan->kw = g.weights[3];
  plan->rows = g.dst[0] * g.dst[2] * g.dst[3];
  plan->patch = plan->kh * plan->kw * g.src[1];
  int64_t outChannels = g.dst[1];
  auto& eng = cpuEngine();
  plan->patchesT = memory::desc({plan->patch, plan->rows}, dt::bf16, memory::dims{1, plan->patch});
  plan->grads = memory::desc({plan->rows, outChannels}, dt::bf16, tag::ab);
  plan->weights = memory::desc({plan->patch, outChannels}, dt::f32, tag::ab);
  matmul::primitive_desc pd(matmul::desc(plan->patchesT, plan->grads, plan->weights), eng);
  if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) return nullptr;
  plan->matmul = matmul(pd);
  plan->columns = std::make_unique<memory>(memory::desc({plan->rows, plan->patch}, dt::bf16, tag::ab), eng);
  return plan;
}

// Fills plan.columns from x (NHWC bf16): row (n, oh, ow) holds x's window at (oh, ow), zeros in the padding.
void fillColumns(const Im2col& plan, const Geometry& g, const uint16_t* x) {
  int64_t channels = g.src[1], height = g.src[2], width = g.src[3], outH = g.dst[2], outW = g.dst[3];
  uint16_t* columns = static_cast<uint16_t*>(plan.columns->get_data_handle());
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < plan.rows; row++) {
    int64_t n = row / (outH * outW), oh = row / outW % outH, ow = row % outW;
    uint16_t* out = columns + row * plan.patch;
    for (int64_t i = 0; i < plan.kh; i++)
      for (int64_t j = 0; j < plan.kw; j++) {
        int64_t ih = oh * g.strides[0] - g.padL[0] + i, iw = ow * g.strides[1] - g.padL[1] + j;
        uint16_t* tap = out + (i * plan.kw + j) * channels;
        if (ih < 0 || ih >= height || iw < 0 || iw >= width)
          std::fill(tap, tap + channels, uint16_t(0));
        else
          std::copy_n(x + ((n * height + ih) * width + iw) * channels, channels, tap);
      }
  }
}

std::unordered_map<std::string, std::unique_ptr<Cached>> cache;

// bf16: inputs of the product in bfloat16 (AMX / AVX512-BF16 tiles), every output and every
// accumulation in f32, as PyTorch's CPU autocast does for convolutions.
struct Types {
  dt x, w, y;
};
Types typesOf(const std::string& kind, bool bf16) {
  if (!bf16) return {dt::f32, dt::f32, dt::f32};
  if (kind == "forward") return {dt::bf16, dt::bf16, dt::f32};
  if (kind == "backwardData") return {dt::f32, dt::bf16, dt::bf16};
  return {dt::bf16, dt::f32, dt::bf16};
}

Cached* build(const std::string& kind, const Geometry& g, bool bf16) {
  auto& eng = cpuEngine();
  Types t = typesOf(kind, bf16);
  // Activations stay NHWC (bf16 copies converted on the way in, f32 outputs written in place;
  // letting oneDNN pick blocked activation layouts measured no faster here). Weights take the
  // layout the primitive picks: bf16 as an input, f32 as the weight gradient.
  tag act = tag::nhwc;
  dt wType = bf16 ? dt::bf16 : dt::f32;
  memory::desc xd(g.src, t.x, act), wd(g.weights, t.w, tag::any), yd(g.dst, t.y, act);
  auto entry = std::make_unique<Cached>();
  // Backward primitives need a forward hint of the same input types.
  Types ft = typesOf("forward", bf16);
  auto fwdPd = convolution_forward::primitive_desc(
      convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, memory::desc(g.src, ft.x, act),
                                memory::desc(g.weights, wType, tag::any), memory::desc(g.dst, ft.y, act), g.strides, g.dilation,
                                g.padL, g.padR),
      eng);
  memory::desc chosenX, chosenW, chosenY;
  if (kind == "forward") {
    entry->prim = convolution_forward(fwdPd);
    chosenX = fwdPd.src_desc(), chosenW = fwdPd.weights_desc(), chosenY = fwdPd.dst_desc();
    entry->impl = fwdPd.impl_info_str();
  } else if (kind == "backwardData" && bf16 && g.strides == memory::dims{1, 1} && g.dilation == memory::dims{0, 0}) {
    int64_t kh = g.weights[2], kw = g.weights[3];
    memory::dims padL = {kh - 1 - g.padL[0], kw - 1 - g.padL[1]}, padR = {kh - 1 - g.padR[0], kw - 1 - g.padR[1]};
    auto pd = convolution_forward::primitive_desc(
        convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, memory::desc(g.dst, dt::bf16, act),
                                  memory::desc({g.src[1], g.dst[1], kh, kw}, dt::bf16, tag::any), memory::desc(g.src, dt::f32, act),
                                  g.strides, g.dilation, padL, padR),
        eng);
    entry->prim = convolution_forward(pd);
    entry->flipped = std::make_unique<FlippedFilter>(FlippedFilter{kh, kw, g.src[1], g.dst[1], std::vector<float>(kh * kw * g.src[1] * g.dst[1])});
    chosenX = pd.dst_desc(), chosenW = pd.weights_desc(), chosenY = pd.src_desc();
    entry->impl = std::string(pd.impl_info_str()) + " (flipped forward)";
  } else if (kind == "backwardData") {
    auto pd = convolution_backward_data::primitive_desc(
        convolution_backward_data::desc(algorithm::convolution_direct, xd, wd, yd, g.strides, g.dilation, g.padL, g.padR), eng, fwdPd);
    entry->prim = convolution_backward_data(pd);
    chosenX = pd.diff_src_desc(), chosenW = pd.weights_desc(), chosenY = pd.diff_dst_desc();
    entry->impl = pd.impl_info_str();
  } else if (kind == "backwardWeights" && bf16 && (entry->im2col = im2colPlan(g))) {
    // The matmul reads x and dy as plain NHWC bf16 and writes dW where tfjs keeps it.
    chosenX = memory::desc(g.src, dt::bf16, act), chosenW = memory::desc(g.weights, dt::f32, tag::hwio), chosenY = memory::desc(g.dst, dt::bf16, act);
    entry->impl = "im2col+matmul:bf16";
  } else if (kind == "backwardWeights") {
    auto pd = convolution_backward_weights::primitive_desc(
        convolution_backward_weights::desc(algorithm::convolution_direct, xd, wd, yd, g.strides, g.dilation, g.padL, g.padR), eng, fwdPd);
    entry->prim = convolution_backward_weights(pd);
    chosenX = pd.src_desc(), chosenW = pd.diff_weights_desc(), chosenY = pd.diff_dst_desc();
    entry->impl = pd.impl_info_str();
  } else {
    throw std::invalid_argument("conv: kind must be forward, backwardData or backwardWeights, found \"" + kind + "\"");
  }
  // A bf16 request oneDNN can only serve with its reference loops is slower than f32: refuse it.
  if (bf16 && entry->impl.rfind("ref", 0) == 0) return nullptr;
  bool fwd = kind == "forward", bwdD = kind == "backwardData", bwdW = kind == "backwardWeights";
  entry->x.init(memory::desc(g.src, dt::f32, tag::nhwc), chosenX, !bwdD, bwdD);
  entry->y.init(memory::desc(g.dst, dt::f32, tag::nhwc), chosenY, !fwd, fwd);
  if (entry->flipped) {
    const FlippedFilter& f = *entry->flipped;
    entry->w.init(memory::desc({f.in, f.out, f.kh, f.kw}, dt::f32, tag::hwio), chosenW, true, false);
  } else {
    entry->w.init(memory::desc(g.weights, dt::f32, tag::hwio), chosenW, !bwdW, bwdW);
  }
  return entry.release();
}

Cached& getCached(const std::string& kind, const Geometry& g, bool bf16) {
  std::string key = keyOf(kind.c_str(), g) + (bf16 ? ",bf16" : ",f32");
  auto found = cache.find(key);
  if (found != cache.end()) return *found->second;
  // The stem (3 input channels) gains nothing from bf16: its products are too short to fill AMX
  // tiles, and its backward-weights pass ran slower in bf16 than in f32 here.
  bool useBf16 = bf16 && g.src[1] >= 16;
  Cached* entry = nullptr;
  if (useBf16) {
    // A CPU without AVX-512 has no bf16 convolution in oneDNN 2.x: such shapes run in f32.
    try {
      entry = build(kind, g, true);
    } catch (const dnnl::error&) {
      entry = nullptr;
    }
  }
  if (!entry) entry = build(kind, g, false);
  return remember(cache, key, std::unique_ptr<Cached>(entry));
}

// A lent bf16 copy: a Uint16Array of the operand's element count (or null/absent: none).
uint16_t* lentCopy(const Napi::Object& options, const char* key, const memory::dims& dims) {
  Napi::Value v = options.Get(key);
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  Napi::Uint16Array a = typedOf<Napi::Uint16Array>(v, napi_uint16_array, "Uint16Array or null", (std::string("conv ") + key).c_str());
  int64_t expected = 1;
  for (auto d : dims) expected *= d;
  if (static_cast<int64_t>(a.ElementLength()) != expected)
    throw std::invalid_argument(std::string("conv ") + key + ": expected " + std::to_string(expected) + " bf16 values for its dims, found " +
                                std::to_string(a.ElementLength()));
  return a.Data();
}

// conv(kind, geometry, x|dx, filter|dW, y|dy[, options]): kind is forward, backwardData or
// backwardWeights; the buffer that kind writes is overwritten. options (all optional):
// - precision: "bf16" computes the product in bfloat16 with f32 outputs (falling back to f32
//   where oneDNN has no fast bf16 kernel for the shape);
// - xCopy, yCopy (Uint16Array) and xCopyReady, yCopyReady: bf16 buffers lent for the input
//   operands x and dy (see Operand);
// Returns {impl: oneDNN's implementation name, xCopied, yCopied: whether the lent buffer was used,
// and so holds the bf16 copy}.
Napi::Value Conv(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (info.Length() < 5) throw std::invalid_argument("conv: expected (kind, geometry, x, filter, y[, options])");
    std::string kind = info[0].As<Napi::String>().Utf8Value();
    Geometry g = geometry(info[1].As<Napi::Object>());
    if (info.Length() > 5 && !info[5].IsObject() && !info[5].IsUndefined())
      throw std::invalid_argument("conv: options must be an object ({precision, xCopy, yCopy, xCopyReady, yCopyReady})");
    Napi::Object options = info.Length() > 5 && info[5].IsObject() ? info[5].As<Napi::Object>() : Napi::Object::New(env);
    Napi::Value precision = options.Get("precision");
    bool bf16 = precision.IsString() && precision.As<Napi::String>().Utf8Value() == "bf16";
    float* x = dataOf(info[2], g.src, "conv x");
    float* w = dataOf(info[3], g.weights, "conv filter");
    float* y = dataOf(info[4], g.dst, "conv y");
    uint16_t* xCopy = kind == "backwardData" ? nullptr : lentCopy(options, "xCopy", g.src);
    uint16_t* yCopy = kind == "forward" ? nullptr : lentCopy(options, "yCopy", g.dst);
    bool xReady = options.Get("xCopyReady").ToBoolean().Value(), yReady = options.Get("yCopyReady").ToBoolean().Value();
    Cached& c = getCached(kind, g, bf16);
    auto& strm = cpuStream();
    bool xCopied = false, yCopied = false;
    memory xm = c.x.bind(x, xCopy, xReady, &xCopied), wm = c.w.bind(c.flipped ? c.flipped->from(w) : w),
           ym = c.y.bind(y, yCopy, yReady, &yCopied);
    if (c.flipped) {
      c.prim.execute(strm, {{DNNL_ARG_SRC, ym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, xm}});
    } else if (kind == "forward") {
      c.prim.execute(strm, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}});
      c.y.writeBack(y);
    } else if (kind == "backwardData") {
      c.prim.execute(strm, {{DNNL_ARG_DIFF_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_DST, ym}});
      c.x.writeBack(x);
    } else if (c.im2col) {
      fillColumns(*c.im2col, g, static_cast<const uint16_t*>(xm.get_data_handle()));
      c.im2col->matmul.execute(strm, {{DNNL_ARG_SRC, memory(c.im2col->patchesT, cpuEngine(), c.im2col->columns->get_data_handle())},
                                      {DNNL_ARG_WEIGHTS, memory(c.im2col->grads, cpuEngine(), ym.get_data_handle())},
                                      {DNNL_ARG_DST, memory(c.im2col->weights, cpuEngine(), w)}});
    } else {
      c.prim.execute(strm, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_WEIGHTS, wm}, {DNNL_ARG_DIFF_DST, ym}});
      c.w.writeBack(w);
    }
    strm.wait();
    Napi::Object result = Napi::Object::New(env);
    result.Set("impl", c.impl);
    result.Set("xCopied", xCopied);
    result.Set("yCopied", yCopied);
    return result;
  });
}

// Batch normalisation in training mode over N·H·W of an NHWC tensor, per channel C, optionally
// with the ReLU that follows it fused in (its mask kept in a workspace for the backward pass).
struct CachedNorm {
  batch_normalization_forward::primitive_desc fwd;
  primitive forward, backward;
};
std::unordered_map<std::string, std::unique_ptr<CachedNorm>> normCache;

CachedNorm& getNorm(const memory::dims& nchw, float eps, bool relu) {
  std::ostringstream k;
  k << eps << (relu ? ",relu" : "");
  for (auto v : nchw) k << ',' << v;
  auto found = normCache.find(k.str());
  if (found != normCache.end()) return *found->second;
  auto& eng = cpuEngine();
  auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
  if (relu) flags = flags | normalization_flags::fuse_norm_relu;
  memory::desc data(nchw, dt::f32, tag::nhwc);
  auto entry = std::make_unique<CachedNorm>();
  entry->fwd = batch_normalization_forward::primitive_desc(
      batch_normalization_forward::desc(prop_kind::forward_training, data, eps, flags), eng);
  entry->forward = batch_normalization_forward(entry->fwd);
  auto bwd = batch_normalization_backward::primitive_desc(
      batch_normalization_backward::desc(prop_kind::backward, data, data, eps, flags), eng, entry->fwd);
  entry->backward = batch_normalization_backward(bwd);
  return remember(normCache, k.str(), std::move(entry));
}

memory::dims nhwcDims(const Napi::Value& v) {
  memory::dims nhwc = dimsOf(v);
  if (nhwc.size() != 4) throw std::invalid_argument("batchNorm: expected an [N,H,W,C] shape");
  return nhwc;
}

// batchNormWorkspaceFloats([N,H,W,C], eps): floats the fused ReLU's workspace needs.
Napi::Value BatchNormWorkspaceFloats(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    memory::dims nhwc = nhwcDims(info[0]);
    CachedNorm& c = getNorm({nhwc[0], nhwc[3], nhwc[1], nhwc[2]}, info[1].As<Napi::Number>().FloatValue(), true);
    return Napi::Number::New(env, static_cast<double>((c.fwd.workspace_desc().get_size() + 3) / 4));
  });
}

// batchNorm("forward", [N,H,W,C], eps, relu, x, scale, shift, y, mean, variance[, workspace]):
// writes y, mean and the biased variance. batchNorm("backward", shape, eps, relu, x, scale,
// shift, dy, dx, mean, variance, dScale, dShift[, workspace]): writes dx, dScale, dShift. With
// relu, y = max(0, normalised) and the backward pass applies the forward's mask first.
Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    std::string kind = info[0].As<Napi::String>().Utf8Value();
    memory::dims nhwc = nhwcDims(info[1]);
    memory::dims nchw = {nhwc[0], nhwc[3], nhwc[1], nhwc[2]};
    float eps = info[2].As<Napi::Number>().FloatValue();
    bool relu = info[3].As<Napi::Boolean>().Value();
    size_t buffers = kind == "forward" ? 6 : 9;
    if (info.Length() != 4 + buffers + (relu ? 1 : 0)) throw std::invalid_argument("batchNorm: wrong number of buffers for " + kind);
    CachedNorm& c = getNorm(nchw, eps, relu);
    auto& eng = cpuEngine();
    auto& strm = cpuStream();
    memory::desc data(nchw, dt::f32, tag::nhwc);
    memory::desc channel({nhwc[3]}, dt::f32, tag::a);
    auto mem = [&](const memory::desc& d, int arg) { return memory(d, eng, dataOf(info[arg], d.dims(), "batchNorm buffer")); };
    std::unordered_map<int, memory> args;
    if (relu) {
      memory::desc ws = c.fwd.workspace_desc();
      int64_t floats = static_cast<int64_t>((ws.get_size() + 3) / 4);
      args.insert({DNNL_ARG_WORKSPACE, memory(ws, eng, dataOf(info[4 + buffers], {floats}, "batchNorm workspace"))});
    }
    if (kind == "forward") {
      args.insert({{DNNL_ARG_SRC, mem(data, 4)}, {DNNL_ARG_SCALE, mem(channel, 5)}, {DNNL_ARG_SHIFT, mem(channel, 6)},
                   {DNNL_ARG_DST, mem(data, 7)}, {DNNL_ARG_MEAN, mem(channel, 8)}, {DNNL_ARG_VARIANCE, mem(channel, 9)}});
      c.forward.execute(strm, args);
    } else if (kind == "backward") {
      args.insert({{DNNL_ARG_SRC, mem(data, 4)}, {DNNL_ARG_SCALE, mem(channel, 5)}, {DNNL_ARG_SHIFT, mem(channel, 6)},
                   {DNNL_ARG_DIFF_DST, mem(data, 7)}, {DNNL_ARG_DIFF_SRC, mem(data, 8)}, {DNNL_ARG_MEAN, mem(channel, 9)},
                   {DNNL_ARG_VARIANCE, mem(channel, 10)}, {DNNL_ARG_DIFF_SCALE, mem(channel, 11)}, {DNNL_ARG_DIFF_SHIFT, mem(channel, 12)}});
      c.backward.execute(strm, args);
    } else {
      throw std::invalid_argument("batchNorm: kind must be forward or backward, found \"" + kind + "\"");
    }
    strm.wait();
    return env.Undefined();
  });
}

// Max pooling. tfjs's MaxPoolGrad gets x, not the argmax: unless the forward's workspace of argmax
// positions is lent back, the gradient runs the forward pass again for it, then scatters dy.
struct CachedPool {
  memory::dims x, y, kernel, strides, pads;  // as the geometry gives them: NHWC shapes, [top, left, bottom, right]
  memory::desc src, dst;
  pooling_forward::primitive_desc fwd;
  primitive inference, forward, backward;
  // The gradient's rerun forward writes its pooled values and argmax here (allocated once: fresh
  // pages each call cost the kernel's page faults).
  std::unique_ptr<memory> workspace, pooled;
  // 2×2 windows that tile the image (stride 2, no padding: every pool of a2's nets) take a2's own
  // loops below, not oneDNN's (none of whose primitives are built for them): their argmax is a
  // byte per output; the gradient's rerun writes rerunPooled and rerunIndex.
  bool tiled = false;
  std::vector<float> rerunPooled;
  std::vector<uint8_t> rerunIndex;
  size_t workspaceBytes() const { return tiled ? rerunIndex.size() : fwd.workspace_desc().get_size(); }
};
std::unordered_map<std::string, std::unique_ptr<CachedPool>> poolCache;

// geometry {x, y, kernel, strides, pads}, as for conv.
CachedPool& getPool(const Napi::Object& g) {
  memory::dims x = dimsOf(g, "x"), y = dimsOf(g, "y"), k = dimsOf(g, "kernel"), st = dimsOf(g, "strides"), p = dimsOf(g, "pads");
  if (x.size() != 4 || y.size() != 4 || k.size() != 2 || st.size() != 2 || p.size() != 4)
    throw std::invalid_argument("maxPool geometry: expected x, y of 4 dims, kernel and strides of 2, pads of 4");
  std::ostringstream key;
  for (auto* d : {&x, &y, &k, &st, &p}) for (auto v : *d) key << v << ',';
  auto found = poolCache.find(key.str());
  if (found != poolCache.end()) return *found->second;
  auto& eng = cpuEngine();
  auto entry = std::make_unique<CachedPool>();
  entry->x = x, entry->y = y, entry->kernel = k, entry->strides = st, entry->pads = p;
  entry->src = memory::desc({x[0], x[3], x[1], x[2]}, dt::f32, tag::nhwc);
  entry->dst = memory::desc({y[0], y[3], y[1], y[2]}, dt::f32, tag::nhwc);
  entry->tiled = k == memory::dims{2, 2} && st == k && p == memory::dims{0, 0, 0, 0} && y[0] == x[0] && y[1] == x[1] / 2 &&
                 y[2] == x[2] / 2 && y[3] == x[3];
  if (entry->tiled) {
    entry->rerunPooled.resize(static_cast<size_t>(y[0] * y[1] * y[2] * y[3]));
    entry->rerunIndex.resize(entry->rerunPooled.size());
    return remember(poolCache, key.str(), std::move(entry));
  }
  memory::dims padL = {p[0], p[1]}, padR = {p[2], p[3]};
  entry->inference = pooling_forward(pooling_forward::primitive_desc(
      pooling_forward::desc(prop_kind::forward_inference, algorithm::pooling_max, entry->src, entry->dst, st, k, padL, padR), eng));
  entry->fwd = pooling_forward::primitive_desc(
      pooling_forward::desc(prop_kind::forward_training, algorithm::pooling_max, entry->src, entry->dst, st, k, padL, padR), eng);
  entry->forward = pooling_forward(entry->fwd);
  auto bwd = pooling_backward::primitive_desc(pooling_backward::desc(algorithm::pooling_max, entry->src, entry->dst, st, k, padL, padR), eng, entry->fwd);
  entry->backward = pooling_backward(bwd);
  entry->workspace = std::make_unique<memory>(entry->fwd.workspace_desc(), eng);
  entry->pooled = std::make_unique<memory>(entry->dst, eng);
  return remember(poolCache, key.str(), std::move(entry));
}

// A tiled max-pool is a pass over memory, not arithmetic: oneDNN 2.6's kernels ran it at a third
// of the bandwidth here. Each window starts from −∞ and takes a value only if it is greater (NaN
// never is), in row-major order, so the first maximum wins, as in tfjs's cpu backend; a window of
// only NaN and −∞ gives −∞ and no argmax (kNoArgmax: its gradient goes nowhere, as there).
// Written so that the compiler vectorises the channel loops (restrict, selects, no branches).
constexpr uint8_t kNoArgmax = 255;

template <bool kArgmax>
void maxOfFour(const float* __restrict a, const float* __restrict b, const float* __restrict c, const float* __restrict d,
               float* __restrict out, uint8_t* __restrict argmax, int64_t channels) {
  for (int64_t i = 0; i < channels; i++) {
    float m = -std::numeric_limits<float>::infinity();
    int32_t at = kNoArgmax;
    bool greater;
    greater = a[i] > m, m = greater ? a[i] : m, at = greater ? 0 : at;
    greater = b[i] > m, m = greater ? b[i] : m, at = greater ? 1 : at;
    greater = c[i] > m, m = greater ? c[i] : m, at = greater ? 2 : at;
    greater = d[i] > m, m = greater ? d[i] : m, at = greater ? 3 : at;
    out[i] = m;
    if (kArgmax) argmax[i] = static_cast<uint8_t>(at);
  }
}

template <bool kArgmax>
void tiledMaxPool(const CachedPool& pool, const float* x, float* y, uint8_t* argmax) {
  const memory::dims &xs = pool.x, &ys = pool.y;
  const int64_t channels = xs[3], rows = ys[0] * ys[1], rowStride = xs[2] * channels;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; row++) {
    const int64_t n = row / ys[1], oh = row % ys[1];
    for (int64_t ow = 0; ow < ys[2]; ow++) {
      const int64_t at = (row * ys[2] + ow) * channels;
      const float* in = x + ((n * xs[1] + 2 * oh) * xs[2] + 2 * ow) * channels;
      maxOfFour<kArgmax>(in, in + channels, in + rowStride, in + rowStride + channels, y + at, kArgmax ? argmax + at : nullptr, channels);
    }
  }
}

// Each input pixel is in at most one window, so each dx is written once, as tfjs's cpu backend
// computes it: 0 + dy·(1 where the pixel was the window's maximum, else 0), so −0 gives +0 and a
// NaN or infinite dy spreads NaN over its window; +0 in the row and column no window covers.
void tiledMaxPoolGrad(const CachedPool& pool, const float* dy, const uint8_t* argmax, float* dx) {
  const memory::dims &xs = pool.x, &ys = pool.y;
  const int64_t channels = xs[3], rows = xs[0] * xs[1];
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; row++) {
    const int64_t n = row / xs[1], ih = row % xs[1], oh = ih / 2;
    float* out = dx + row * xs[2] * channels;
    if (oh >= ys[1]) {
      std::fill(out, out + xs[2] * channels, 0.0f);
      continue;
    }
    for (int64_t iw = 0; iw < xs[2]; iw++) {
      const int64_t ow = iw / 2;
      float* __restrict o = out + iw * channels;
      if (ow >= ys[2]) {
        std::fill(o, o + channels, 0.0f);
        continue;
      }
      const int64_t at = ((n * ys[1] + oh) * ys[2] + ow) * channels;
      const float* __restrict g = dy + at;
      const uint8_t* __restrict arg = argmax + at;
      const uint8_t position = static_cast<uint8_t>((ih % 2) * 2 + iw % 2);
      for (int64_t c = 0; c < channels; c++) {
        // The 0/1 factor made from bits, not a branch or a bool-to-float conversion, so that the loop vectorises.
        const uint32_t bits = (0u - static_cast<uint32_t>(arg[c] == position)) & 0x3f800000u;  // 1.0f or +0
        float factor;
        std::memcpy(&factor, &bits, sizeof factor);
        o[c] = 0.0f + g[c] * factor;
      }
    }
  }
}

// A max-pool's workspace (argmax positions) lent by the caller: a Uint8Array of workspaceBytes(), or absent (null).
uint8_t* lentWorkspace(const Napi::CallbackInfo& info, size_t at, const CachedPool& c, const char* what) {
  if (info.Length() <= at || info[at].IsUndefined() || info[at].IsNull()) return nullptr;
  Napi::Uint8Array a = typedOf<Napi::Uint8Array>(info[at], napi_uint8_array, "Uint8Array", what);
  size_t bytes = c.workspaceBytes();
  if (a.ByteLength() != bytes)
    throw std::invalid_argument(std::string(what) + ": expected " + std::to_string(bytes) + " bytes, found " + std::to_string(a.ByteLength()));
  return a.Data();
}

// maxPoolWorkspaceBytes(geometry): the bytes of the workspace maxPool and maxPoolGrad may be lent.
Napi::Value MaxPoolWorkspaceBytes(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::Number::New(env, static_cast<double>(getPool(info[0].As<Napi::Object>()).workspaceBytes()));
  });
}

// tfjs's cpu backend's max-pool (its reference) takes each window's max over the values greater
// than −∞ (NaN is never greater), −∞ where there is none. oneDNN's agrees except that it starts
// from the lowest float, so a window of only NaN and −∞ gives −3.4e38 there: such outputs (and only
// they can equal the lowest float) are recomputed by the reference rule.
void mendEmptyWindows(const CachedPool& pool, const float* x, float* y) {
  const memory::dims &xs = pool.x, &ys = pool.y, &k = pool.kernel, &st = pool.strides, &p = pool.pads;
  int64_t channels = xs[3], outputs = ys[0] * ys[1] * ys[2] * channels;
  const float lowest = std::numeric_limits<float>::lowest();
  int hit = 0;
#pragma omp parallel for schedule(static) reduction(| : hit)
  for (int64_t i = 0; i < outputs; i++) hit |= y[i] == lowest;
  if (!hit) return;
  for (int64_t n = 0; n < ys[0]; n++)
    for (int64_t oh = 0; oh < ys[1]; oh++)
      for (int64_t ow = 0; ow < ys[2]; ow++)
        for (int64_t c = 0; c < channels; c++) {
          float& out = y[((n * ys[1] + oh) * ys[2] + ow) * channels + c];
          if (out != lowest) continue;
          float best = -std::numeric_limits<float>::infinity();
          for (int64_t i = 0; i < k[0]; i++)
            for (int64_t j = 0; j < k[1]; j++) {
              int64_t ih = oh * st[0] - p[0] + i, iw = ow * st[1] - p[1] + j;
              if (ih < 0 || ih >= xs[1] || iw < 0 || iw >= xs[2]) continue;
              float v = x[((n * xs[1] + ih) * xs[2] + iw) * channels + c];
              if (v > best) best = v;
            }
          out = best;
        }
}

// maxPool(geometry, x, y[, workspace]): writes y, each window's largest value (on both cores; NaN
// and −∞ as tfjs's cpu backend treats them: see tiledMaxPool and mendEmptyWindows), and into the
// workspace, if lent, where each maximum was, for maxPoolGrad.
Napi::Value MaxPool(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    CachedPool& c = getPool(info[0].As<Napi::Object>());
    auto& eng = cpuEngine();
    auto& strm = cpuStream();
    float* xData = dataOf(info[1], c.src.dims(), "maxPool x");
    float* yData = dataOf(info[2], c.dst.dims(), "maxPool y");
    uint8_t* workspace = lentWorkspace(info, 3, c, "maxPool workspace");
    if (c.tiled) {
      if (workspace)
        tiledMaxPool<true>(c, xData, yData, workspace);
      else
        tiledMaxPool<false>(c, xData, yData, nullptr);
      return env.Undefined();
    }
    memory x(c.src, eng, xData), y(c.dst, eng, yData);
    if (workspace)
      c.forward.execute(strm, {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, y}, {DNNL_ARG_WORKSPACE, memory(c.fwd.workspace_desc(), eng, workspace)}});
    else
      c.inference.execute(strm, {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, y}});
    strm.wait();
    mendEmptyWindows(c, xData, yData);
    return env.Undefined();
  });
}

// maxPoolGrad(geometry, x, dy, dx[, workspace]): writes dx. With the workspace maxPool filled for
// this x, the pooling is not run again.
Napi::Value MaxPoolGrad(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    CachedPool& c = getPool(info[0].As<Napi::Object>());
    auto& eng = cpuEngine();
    auto& strm = cpuStream();
    uint8_t* workspace = lentWorkspace(info, 4, c, "maxPoolGrad workspace");
    if (c.tiled) {
      uint8_t* argmax = workspace ? workspace : c.rerunIndex.data();
      if (!workspace) tiledMaxPool<true>(c, dataOf(info[1], c.src.dims(), "maxPoolGrad x"), c.rerunPooled.data(), argmax);
      tiledMaxPoolGrad(c, dataOf(info[2], c.dst.dims(), "maxPoolGrad dy"), argmax, dataOf(info[3], c.src.dims(), "maxPoolGrad dx"));
      return env.Undefined();
    }
    if (!workspace)
      c.forward.execute(strm, {{DNNL_ARG_SRC, memory(c.src, eng, dataOf(info[1], c.src.dims(), "maxPoolGrad x"))},
                               {DNNL_ARG_DST, *c.pooled},
                               {DNNL_ARG_WORKSPACE, *c.workspace}});
    c.backward.execute(strm, {{DNNL_ARG_DIFF_DST, memory(c.dst, eng, dataOf(info[2], c.dst.dims(), "maxPoolGrad dy"))},
                              {DNNL_ARG_DIFF_SRC, memory(c.src, eng, dataOf(info[3], c.src.dims(), "maxPoolGrad dx"))},
                              {DNNL_ARG_WORKSPACE, workspace ? memory(c.fwd.workspace_desc(), eng, workspace) : *c.workspace}});
    strm.wait();
    return env.Undefined();
  });
}

// Batch norm with given statistics (evaluation), the ReLU fused when asked. Not a oneDNN primitive:
// it repeats wasm's FusedBatchNorm rounding for rounding, so that a net evaluates to the same bits
// with or without the addon, and only drops wasm's per-element index bookkeeping and the separate
// ReLU pass. Measured against the wasm kernel (test/tensor/onednn-addon.test.ts): √(σ² + ε) and
// (x − μ)·γ are rounded to float, the division and the addition of β are not (one rounding at the end).
// batchNormInference(shape [N,H,W,C], epsilon, relu, x, mean, variance, offset, scale, y): writes y.
Napi::Value BatchNormInference(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    memory::dims shape = nhwcDims(info[0]);
    int64_t channels = shape[3], pixels = shape[0] * shape[1] * shape[2];
    float epsilon = info[1].As<Napi::Number>().FloatValue();
    bool relu = info[2].As<Napi::Boolean>().Value();
    const float* x = dataOf(info[3], shape, "batchNormInference x");
    const float* mean = dataOf(info[4], {channels}, "batchNormInference mean");
    const float* variance = dataOf(info[5], {channels}, "batchNormInference variance");
    const float* offset = dataOf(info[6], {channels}, "batchNormInference offset");
    const float* scale = dataOf(info[7], {channels}, "batchNormInference scale");
    float* y = dataOf(info[8], shape, "batchNormInference y");
    std::vector<float> factor(channels);
    for (int64_t c = 0; c < channels; c++) factor[c] = std::sqrt(variance[c] + epsilon);
    // Each pixel on its own: the two cores split them, every value computed as on one.
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pixels; p++) {
      const float* xp = x + p * channels;
      float* yp = y + p * channels;
      for (int64_t c = 0; c < channels; c++) {
        float scaled = (xp[c] - mean[c]) * scale[c];
        float v = static_cast<float>(double(offset[c]) + double(scaled) / double(factor[c]));
        yp[c] = relu && !(v > 0.0f) ? 0.0f : v;
      }
    }
    return env.Undefined();
  });
}

// sumLeadingAxes(x, outer, inner, scale, out): out[j] = scale · Σ_i x[i·inner + j], summed in double
// in the order of i and rounded once, as a2's JS kernel does (src/tensor/wasm-kernels.ts), so the
// bits do not depend on which runs. The cores split the columns j, never a column's sum.
Napi::Value SumLeadingAxes(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    int64_t outer = info[1].As<Napi::Number>().Int64Value(), inner = info[2].As<Napi::Number>().Int64Value();
    if (outer < 1 || inner < 1) throw std::invalid_argument("sumLeadingAxes: expected outer and inner ≥ 1");
    const float* x = dataOf(info[0], {outer, inner}, "sumLeadingAxes x");
    double scale = info[3].As<Napi::Number>().DoubleValue();
    float* out = dataOf(info[4], {inner}, "sumLeadingAxes out");
    // Columns in blocks of 8 (one cache line of a row's floats per block), a block per thread at a time.
    constexpr int64_t kBlock = 8;
    int64_t blocks = (inner + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (outer * inner >= (1 << 16))
    for (int64_t b = 0; b < blocks; b++) {
      int64_t j0 = b * kBlock, j1 = std::min(inner, j0 + kBlock);
      double acc[kBlock] = {0};
      for (int64_t i = 0; i < outer; i++) {
        const float* row = x + i * inner;
        for (int64_t j = j0; j < j1; j++) acc[j - j0] += row[j];
      }
      for (int64_t j = j0; j < j1; j++) out[j] = static_cast<float>(acc[j - j0] * scale);
    }
    return env.Undefined();
  });
}

// equalBroadcast(shape, a, aStrides, b, bStrides, out): out[i] = 1 where a and b, broadcast to
// shape (strides in elements, 0 along a broadcast axis), are equal, else 0 (NaN equals nothing).
Napi::Value EqualBroadcast(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    memory::dims shape = dimsOf(info[0]), sa = dimsOf(info[2]), sb = dimsOf(info[4]);
    size_t rank = shape.size();
    if (rank == 0 || sa.size() != rank || sb.size() != rank) throw std::invalid_argument("equalBroadcast: shape and strides of one rank ≥ 1");
    int64_t total = 1, aSpan = 1, bSpan = 1;
    for (size_t d = 0; d < rank; d++) {
      if (shape[d] < 1 || sa[d] < 0 || sb[d] < 0) throw std::invalid_argument("equalBroadcast: sizes ≥ 1 and strides ≥ 0");
      total *= shape[d];
      aSpan += (shape[d] - 1) * sa[d];
      bSpan += (shape[d] - 1) * sb[d];
    }
    Napi::Float32Array av = float32Of(info[1], "equalBroadcast a"), bv = float32Of(info[3], "equalBroadcast b");
    Napi::Uint8Array ov = typedOf<Napi::Uint8Array>(info[5], napi_uint8_array, "Uint8Array", "equalBroadcast out");
    if (static_cast<int64_t>(av.ElementLength()) < aSpan || static_cast<int64_t>(bv.ElementLength()) < bSpan ||
        static_cast<int64_t>(ov.ElementLength()) != total)
      throw std::invalid_argument("equalBroadcast: a buffer is smaller than its shape and strides say");
    const float *a = av.Data(), *b = bv.Data();
    uint8_t* out = ov.Data();
    // The innermost axis in a tight loop, the outer ones counted like an odometer.
    int64_t inner = shape[rank - 1], ia0 = 0, ib0 = 0;
    std::vector<int64_t> index(rank, 0);
    for (int64_t o = 0; o < total; o += inner) {
      for (int64_t k = 0; k < inner; k++) out[o + k] = a[ia0 + k * sa[rank - 1]] == b[ib0 + k * sb[rank - 1]];
      for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; d--) {
        ia0 += sa[d];
        ib0 += sb[d];
        if (++index[d] < shape[d]) break;
        ia0 -= sa[d] * shape[d];
        ib0 -= sb[d] * shape[d];
        index[d] = 0;
      }
    }
    return env.Undefined();
  });
}

// Elementwise passes tfjs's wasm kernels run on one core, on both, each element's arithmetic
// exactly as theirs (one IEEE operation per element, so the bits match; tests compare them):
// - biasAdd(x, bias, y): y[i] = x[i] + bias[i mod C], the per-channel add of an NHWC tensor;
// - relu(x, y): y = x where x > 0 or x is NaN, else +0;
// - reluGrad(dy, x, dx): dx = dy · step(x), step = 1 where x > 0, NaN where x is NaN, else 0 (tfjs's gradient).
constexpr int64_t kParallelElements = 1 << 15;

Napi::Value BiasAdd(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    Napi::Float32Array xa = float32Of(info[0], "biasAdd x");
    int64_t n = static_cast<int64_t>(xa.ElementLength());
    Napi::Float32Array biasArray = float32Of(info[1], "biasAdd bias");
    int64_t channels = static_cast<int64_t>(biasArray.ElementLength());
    if (channels < 1 || n % channels != 0) throw std::invalid_argument("biasAdd: x's length must be a multiple of the bias's");
    const float* x = xa.Data();
    const float* bias = biasArray.Data();
    float* y = dataOf(info[2], {n}, "biasAdd y");
    int64_t pixels = n / channels;
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
    for (int64_t p = 0; p < pixels; p++)
      for (int64_t c = 0; c < channels; c++) y[p * channels + c] = x[p * channels + c] + bias[c];
    return env.Undefined();
  });
}

// Applies out[i] = f(in0[i], ..., inK[i]) over buffers of one length (the last argument is out).
template <size_t K, typename F>
Napi::Value elementwise(const Napi::CallbackInfo& info, const char* what, F f) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    int64_t n = static_cast<int64_t>(float32Of(info[0], what).ElementLength());
    const float* in[K];
    for (size_t k = 0; k < K; k++) in[k] = dataOf(info[k], {n}, what);
    float* out = dataOf(info[K], {n}, what);
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
    for (int64_t i = 0; i < n; i++) out[i] = f(in, i);
    return env.Undefined();
  });
}

Napi::Value Relu(const Napi::CallbackInfo& info) {
  return elementwise<1>(info, "relu", [](const float* const* in, int64_t i) {
    float x = in[0][i];
    return x > 0.0f || x != x ? x : 0.0f;
  });
}

Napi::Value ReluGrad(const Napi::CallbackInfo& info) {
  return elementwise<2>(info, "reluGrad", [](const float* const* in, int64_t i) {
    float dy = in[0][i], x = in[1][i];
    return dy * (x > 0.0f ? 1.0f : x != x ? x : 0.0f);
  });
}

// momentumUpdate(momentum, scale, nesterov, [elements, value, accumulation, gradient, newValue,
// newAccumulation] for each variable, every buffer checked to hold `elements` floats): tfjs's
// MomentumOptimizer update for every variable in one call, each element's arithmetic as its ops
// do it (one f32 rounding per op, in their order, so the bits match): a' = m·a + g; v' = c·(g + a'·m) + v with Nesterov, else v' = c·a' + v, where
// c = −learning rate. m and c are the f32 scalars the optimizer holds.
Napi::Value MomentumUpdate(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (info.Length() < 3 || (info.Length() - 3) % 6 != 0 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsBoolean())
      throw std::invalid_argument("momentumUpdate: expected (momentum, scale, nesterov, then elements and 5 buffers a variable)");
    const float m = info[0].As<Napi::Number>().FloatValue(), c = info[1].As<Napi::Number>().FloatValue();
    const bool nesterov = info[2].As<Napi::Boolean>().Value();
    for (size_t at = 3; at < info.Length(); at += 6) {
      if (!info[at].IsNumber()) throw std::invalid_argument("momentumUpdate: expected a variable's element count");
      int64_t n = info[at].As<Napi::Number>().Int64Value();
      const float* v = dataOf(info[at + 1], {n}, "momentumUpdate value");
      const float* a = dataOf(info[at + 2], {n}, "momentumUpdate accumulation");
      const float* g = dataOf(info[at + 3], {n}, "momentumUpdate gradient");
      float* nv = dataOf(info[at + 4], {n}, "momentumUpdate new value");
      float* na = dataOf(info[at + 5], {n}, "momentumUpdate new accumulation");
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
      for (int64_t i = 0; i < n; i++) {
        const float acc = m * a[i] + g[i];
        na[i] = acc;
        nv[i] = nesterov ? c * (g[i] + acc * m) + v[i] : c * acc + v[i];
      }
    }
    return env.Undefined();
  });
}

// How many entries each cache holds (one per kind, shape and precision), for the test of the cap.
Napi::Value CachedPrimitives(const Napi::CallbackInfo& info) {
  Napi::Object sizes = Napi::Object::New(info.Env());
  sizes.Set("conv", double(cache.size()));
  sizes.Set("batchNorm", double(normCache.size()));
  sizes.Set("maxPool", double(poolCache.size()));
  return sizes;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // The calling convention JS expects (src/tensor/onednn-kernels.ts, ADDON_ABI): raised whenever a
  // binding's arguments or results change, so that a stale build is refused, not misread.
  exports.Set("abi", Napi::Number::New(env, 2));
  exports.Set("momentumUpdate", Napi::Function::New(env, MomentumUpdate));
  exports.Set("cachedPrimitives", Napi::Function::New(env, CachedPrimitives));
  exports.Set("maxCachedPrimitives", Napi::Number::New(env, double(kMaxCachedPrimitives)));
  exports.Set("maxPool", Napi::Function::New(env, MaxPool));
  exports.Set("maxPoolWorkspaceBytes", Napi::Function::New(env, MaxPoolWorkspaceBytes));
  exports.Set("maxPoolGrad", Napi::Function::New(env, MaxPoolGrad));
  exports.Set("conv", Napi::Function::New(env, Conv));
  exports.Set("batchNorm", Napi::Function::New(env, BatchNorm));
  exports.Set("batchNormWorkspaceFloats", Napi::Function::New(env, BatchNormWorkspaceFloats));
  exports.Set("batchNormInference", Napi::Function::New(env, BatchNormInference));
  exports.Set("sumLeadingAxes", Napi::Function::New(env, SumLeadingAxes));
  exports.Set("equalBroadcast", Napi::Function::New(env, EqualBroadcast));
  exports.Set("biasAdd", Napi::Function::New(env, BiasAdd));
  exports.Set("relu", Napi::Function::New(env, Relu));
  exports.Set("reluGrad", Napi::Function::New(env, ReluGrad));
  // The ISA oneDNN dispatches to: bf16 pays only where the CPU multiplies bf16 natively.
  auto isa = get_effective_cpu_isa();
  exports.Set("bf16Native", Napi::Boolean::New(env, isa == cpu_isa::avx512_core_bf16 || isa == cpu_isa::avx512_core_amx));
  exports.Set("version", Napi::String::New(env, std::to_string(dnnl_version()->major) + "." + std::to_string(dnnl_version()->minor) + "." + std::to_string(dnnl_version()->patch)));
  return exports;
}

}  // namespace

NODE_API_MODULE(a2_onednn, Init)
