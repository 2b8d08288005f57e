"""The data plane's bytes: datagrams, the node↔daemon channel, Arrow layout, metadata.

What both ends of a link agree on, below the backends and codecs that carry it.

May import: the foundation modules, the standard library, numpy and pyarrow. Nothing else of
Doradus.
"""
