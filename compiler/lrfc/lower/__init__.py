"""Lowering: Keras models to deployable files, one module and one entry function per format.

* ``tflite.export_tflite``: TFLite (LiteRT) at fp32, fp16 or full int8;
* ``onnx.export_onnx`` / ``onnx.quantize_onnx_int8``: ONNX (opset 17, or the target's: ``opset``) and
  its ONNX Runtime QDQ int8 form;
* ``twin.converter_twin``: what both convert (``static_shapes``: fixed-shape
  ``Flatten``/``Reshape`` and ``Dense`` on maps with constant reshapes;
  ``grouped_conv``: grouped convolutions as depthwise or per-group ones;
  ``separable_depthwise``: a depthwise kh x 1 then 1 x kw pair as one kh x kw;
  for TFLite ``xnnpack_forms``: forms LiteRT's XNNPACK delegate takes);
* ``xnnpack_int8``: int8 operators XNNPACK leaves out (an unfused RELU, HARD_SWISH) rewritten as ones it takes;
* ``verify``: the gate that runs an artifact in its runtime against Keras;
* ``artifacts.lower``: export + gate per format (the formats are independent);
* ``export`` (``lrfc export``), ``check`` (``lrfc verify``), ``stage`` (the build's lower stage);
* ``judge``: a rung's files at an int8/fp16 target's precision, lowered as ``stage`` would and scored on
  validation, for the budget search (``train.contract``).

Submodules are imported on use: importing this package loads no TensorFlow.
"""
