"""Code generation: kernels as LLVM IR for the CPU (cpu.py) and NVPTX (ptx.py)."""
