{
  "targets": [{
    "target_name": "a2_onednn",
    "sources": ["onednn.cc"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
    "cflags_cc": ["-std=c++17", "-O3", "-ffp-contract=off", "-fexceptions", "-fopenmp"],
    "cflags_cc!": ["-fno-exceptions"],
    "libraries": ["-ldnnl", "-fopenmp"]
  }]
}
