"""``python -m sss_nnunet.gpucheck [--out DIR] [--quick]``: one command that checks RWKV-SSS on a
CUDA machine and writes ``report.json`` and ``report.md``.

Sections (see ``__main__``): (a) Bi-WKV numerics against the float64 reference, per backend
and dtype, and bit-identical gradients over two runs; (b) Bi-WKV forward and forward+backward
times at every shape the default network uses, plus long sequences, with achieved bandwidth
against the HBM floor; (c) one training step of the default network (fp16 autocast +
GradScaler, eager and torch.compile): time, peak memory, stream synchronisations and
host-to-device copies, share of GPU time in the WKV kernels, top kernels; (d) one DDP step on
2 GPUs. Without CUDA it runs what it can on the CPU and lists what it skipped.
"""
