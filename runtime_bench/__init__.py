"""Run exported models on a device: numpy and one runtime (LiteRT or ONNX Runtime), no TensorFlow."""
