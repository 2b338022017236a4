#!/usr/bin/env python3
"""Which BLAS does this process's PyTorch run its matrix products on, and with how many threads?

A ratio against PyTorch means little when PyTorch runs on the reference (netlib) BLAS: Debian's
python3-torch is built against the generic libblas.so.3 (BLAS_INFO=generic), which the alternatives
system points at OpenBLAS when libopenblas0 is installed, and at the reference BLAS (about 20x slower
on a 1024^3 product) otherwise. So the check looks at what is actually loaded: after one product, the
mapped BLAS libraries of this process (/proc/self/maps gives their resolved paths), then OpenBLAS's own
config and core through ctypes, and times a 512^3 product.

Used by bench/torch_llmrec.py (import) and by bench/run.ts (python3 bench/torch_blas.py prints one JSON
line). Python is only for benches: no test depends on it.
"""
import ctypes
import json
import os
import re
import time

_BLAS_RE = re.compile(r'(blas|mkl|blis|atlas|lapack|flexiblas)', re.I)


def _mapped_blas():
    libs = []
    try:
        with open('/proc/self/maps') as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[5].startswith('/') and _BLAS_RE.search(os.path.basename(parts[5])):
                    if parts[5] not in libs:
                        libs.append(parts[5])
    except OSError:
        pass
    return libs


def _openblas(libs):
    """OpenBLAS's config string, core and threads, from the first mapped library that exports them."""
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib, dict(config=lib.openblas_get_config().decode(), core=lib.openblas_get_corename().decode(),
                             threads=int(lib.openblas_get_num_threads()))
        except (OSError, AttributeError):
            continue
    return None, None


_OPENBLAS_LIB = None


def set_blas_threads(n):
    """Set OpenBLAS's threads (torch.set_num_threads does not reach it); no-op for other BLAS."""
    if _OPENBLAS_LIB is not None:
        _OPENBLAS_LIB.openblas_set_num_threads(int(n))


def blas_info(torch):
    """A dict: kind ('openblas', 'mkl', 'blis', 'reference', 'unknown'), libs, build info, GFLOP/s."""
    global _OPENBLAS_LIB
    a = torch.randn(512, 512)
    a @ a  # make sure the BLAS is loaded (lazily, by some builds)
    libs = _mapped_blas()
    real = [os.path.realpath(p) for p in libs]
    cfg = torch.__config__.show()
    m = re.search(r'BLAS_INFO=(\w+)', cfg)
    build = m.group(1) if m else '?'
    lib, ob = _openblas(libs)
    _OPENBLAS_LIB = lib
    if ob or any('openblas' in p for p in real):
        kind = 'openblas'
    elif build == 'mkl' or any('mkl' in p for p in real) or torch.backends.mkl.is_available():
        kind = 'mkl'
    elif any('blis' in p for p in real):
        kind = 'blis'
    elif any(re.search(r'/blas/libblas\.so', p) for p in real) or (build == 'generic' and any('libblas.so' in p for p in real)):
        # Debian's netlib reference BLAS lives in .../blas/libblas.so.3 (package libblas3)
        kind = 'reference'
    else:
        kind = 'unknown'
    # a 512^3 product at the current thread count: reference BLAS gives a few GFLOP/s, OpenBLAS tens
    best = float('inf')
    for _ in range(5):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return dict(kind=kind, build=build, libs=real, openblas=ob, torch=torch.__version__,
                torch_threads=torch.get_num_threads(), gflops_512=2 * 512 ** 3 / best / 1e9)


def describe(info):
    """One line for a bench's output."""
    s = f"PyTorch {info['torch']} on {info['kind']} BLAS"
    if info.get('openblas'):
        s += f" ({info['openblas']['config'].strip()}; core {info['openblas']['core']})"
    s += f" [{', '.join(info['libs']) or 'no BLAS library mapped'}; BLAS_INFO={info['build']}]"
    return s


if __name__ == '__main__':
    import torch
    torch.set_num_threads(1)
    info = blas_info(torch)
    set_blas_threads(1)
    info['describe'] = describe(info)
    print(json.dumps(info))
