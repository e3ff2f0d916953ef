#!/bin/sh
# bench.gpu's device half on a machine with an NVIDIA GPU and onnxruntime-gpu (CUDA 13 build, 1.30 was used):
#   sh bench/gpu_device.sh PACK OUT [--runtime onnxruntime-cuda] [--runs 300]
# ONNX Runtime's CUDA provider opens cuBLAS, cuRAND, the CUDA runtime and cuDNN by name; where they come from
# pip's nvidia-* packages (a PyTorch install, say) rather than the system, their folders go on LD_LIBRARY_PATH
# here. ORT_SITE (optional) is a folder holding an unpacked onnxruntime-gpu, put first on PYTHONPATH (the
# project's GPU machine has no package registry: the package travels there unpacked).
set -e
libs=$(find /opt /usr/local /usr/lib \( -name 'libcublasLt.so.13' -o -name 'libcublas.so.13' -o -name 'libcurand.so.10' \
       -o -name 'libcudart.so.13' -o -name 'libcudnn.so.9' -o -name 'libcufft.so.12' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -)
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONPATH="${ORT_SITE:+$ORT_SITE:}$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c "import onnxruntime as o; print(o.__file__, o.__version__, o.get_available_providers())"
exec python3 -m bench.gpu_device "$@"
