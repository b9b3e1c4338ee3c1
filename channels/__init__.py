"""The built-in channel plugins, one module each, found through the ``carecast.channels`` entry-point group.

They import the contract from :mod:`carecast.channel`; the core never imports them.
"""
