"""moead-edge's Python toolchain: MoEAD training, ONNX export, INT8 quantization, bundles."""
