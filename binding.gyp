{
  "variables": {
    "evorec_blas%": "<!(node native/detect-blas.cjs kind)",
    "evorec_blas_include%": "<!(node native/detect-blas.cjs include)"
  },
  "targets": [
    {
      "target_name": "evorec_native",
      "sources": ["native/binding.c", "native/kernels.c", "native/dropout.c", "native/attention.c", "native/gemm.c", "native/gemm-builtin.c", "native/parallel.c"],
      "cflags": ["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-std=gnu11", "-pthread"],
      "ldflags": ["-pthread"],
      "cflags!": ["-O2", "-O0"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-O3", "-fopenmp-simd", "-fno-math-errno"]
      },
      "conditions": [
        ["evorec_blas=='openblas'", {
          "defines": ["EVOREC_HAVE_CBLAS", "EVOREC_OPENBLAS"],
          "include_dirs": ["<(evorec_blas_include)"],
          "libraries": ["-lopenblas"],
          "conditions": [
            ["OS=='mac'", {
              "libraries": ["-L/opt/homebrew/opt/openblas/lib", "-L/usr/local/opt/openblas/lib"]
            }]
          ]
        }]
      ]
    }
  ]
}
