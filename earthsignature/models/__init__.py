"""Model repository (Triton layout), inference runners (Triton, embedded onnxruntime), U-Net."""
