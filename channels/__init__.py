"""The built-in channel plugins, one module each, found through the ``carecast.channels`` entry-point group.

They import only the public plugin API (:mod:`carecast.plugin`), as a third party's channel does; the core never
imports them.
"""
