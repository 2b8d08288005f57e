"""dora-rs compatibility for nodes run by Doradus.

The Doradus daemon puts this folder first on ``PYTHONPATH`` of every node it
spawns, so ``from dora import Node`` (or ``import dora; dora.Node()``) in a
node written for dora-rs gets Doradus's implementation — even where the real
``dora-rs`` package is installed too. It is never installed as a top-level
package.
"""

from doradus._node.dora import DoraStatus, Node

__version__ = "1.1.0"
__all__ = ["DoraStatus", "Node"]
