"""What the Python peers of the benchmarks share: PyTorch's best CPU configuration on this CPU.

bf16 autocast only where the CPU computes bf16 natively (AVX-512 BF16 or AMX, the rule of the library's
precision 'auto'); elsewhere bf16 is emulated and several times slower than fp32, so the best configuration is fp32.
"""
import contextlib

import torch


def native_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


BEST_DTYPE = torch.bfloat16 if native_bf16() else torch.float32


def best_autocast():
    """bf16 autocast where the CPU has native BF16, else nothing (fp32)."""
    if BEST_DTYPE == torch.bfloat16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
