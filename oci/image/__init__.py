"""Image workflows over any location: the reference grammar (``ref``), the source/sink
interface and its layout and OCI-archive implementations (``locations``), ``copy``,
``build`` (pack, unpack, commit, config edits), ``verify``, ``sign``, ``describe``."""
