"""Generators and models: Verilog emission, Yosys synthesis reports, the layer compiler,
and the cycle and energy model."""
