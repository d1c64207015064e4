"""Runtime bundles: what ocikit records in one (``meta``), image config -> config.json
(``convert``), the shared store of extracted layers keyed by chainID (``layerstore``), and
each bundle's own /etc/hostname, /etc/hosts and /etc/resolv.conf (``initlayer``)."""
