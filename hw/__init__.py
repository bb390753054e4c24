"""Amaranth HDL blocks of the accelerator (PE, array, buffers, controller, top level).

Nothing here imports ``cosim``; the configuration module imports no Amaranth."""
