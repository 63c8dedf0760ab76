"""The notebook layer: the ``%hermes`` / ``%%hermes`` magics with their sub-commands, and the
``{name}`` interpolation of notebook variables into a prompt.

The top of the stack: it may use every layer below (view, store, engine, core) and nothing
imports it except ``load_ipython_extension``.
"""

from __future__ import annotations

from .magics import HermesMagics, load, unload

__all__ = ["HermesMagics", "load", "unload"]
