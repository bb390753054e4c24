"""The hardware blocks the generators know: one registry for ``gen verilog`` and ``gen synth``.

Each :class:`Block` names the Verilog module it is emitted as, the file and
class of its Amaranth component, its synthesis key, and the blocks inside it
(with the instance names Amaranth gives them), so that synthesis can black-box
them and count each child's figures once per instance.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["Block", "BLOCKS", "VERILOG_BLOCKS", "block", "build"]


@dataclass(frozen=True)
class Block:
    """One block: ``module`` (its Verilog module name), ``path`` (``package.module:Class``
    of its component), ``synth`` (its key in the synthesis report), ``title``, and
    ``children``: per child block's module name a function of the config giving the
    child's instance names inside this one (Amaranth names them ``parent.child``)."""

    module: str
    path: str
    synth: str
    title: str
    children: tuple = ()

    @property
    def file(self):
        """The source file of the block's component."""
        return self.path.split(":")[0].replace(".", "/") + ".py"

    def component(self):
        """The component class."""
        module, name = self.path.split(":")
        return getattr(importlib.import_module(module), name)

    def instances(self, config):
        """``{child module: [instance names]}`` of this block for ``config``."""
        return {child: instances(config) for child, instances in self.children}

    def blackboxes(self):
        """Module-name patterns of its children, for Yosys' ``blackbox``."""
        return tuple(pattern for _, pattern in self._patterns())

    def _patterns(self):
        return [(child, {"sparse_pe": f"{self.module}.pe_*",
                         "pe_array": f"{self.module}.array*",
                         "controller": f"{self.module}.controller*"}[child])
                for child, _ in self.children]


BLOCKS = (
    Block("sparse_pe", "hw.pe:SparsePE", "pe", "PE (sparse-aware)"),
    Block("pe_array", "hw.array:PEArray", "array", "PE array (sparse-aware)",
          children=(("sparse_pe", lambda config: [f"pe_array.pe_{n}"
                                                  for n in range(config.pes)]),)),
    Block("controller", "hw.controller:Controller", "controller", "controller"),
    Block("accelerator", "hw.top:Accelerator", "top", "accelerator (top level)",
          children=(("pe_array", lambda config: ["accelerator.array"]),
                    ("controller", lambda config: ["accelerator.controller"]))),
    # The area baseline: what a dense accelerator's PE would be (no array of its own;
    # the report builds its accelerator from the others' figures).
    Block("dense_pe", "hw.dense_pe:DensePE", "dense_pe", "PE (purpose-built dense)"),
)

#: Verilog module name -> :class:`Block`, in emission order.
VERILOG_BLOCKS = {entry.module: entry for entry in BLOCKS}


def block(module):
    """The :class:`Block` emitted as ``module``; a ValueError lists the known ones."""
    if module not in VERILOG_BLOCKS:
        raise ValueError(f"unknown block {module!r}; known: {', '.join(VERILOG_BLOCKS)}")
    return VERILOG_BLOCKS[module]


def build(module, config):
    """The component of block ``module`` built for ``config``."""
    return block(module).component()(config)
